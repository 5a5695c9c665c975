"""MMFA's training (paper 003, §3.4 and supp. B.2) on the shared loop
(:mod:`reanimate.training.loop`): atomic checkpoints, exact resume, torchrun DDP, AMP,
TensorBoard and the weight average come from there.

One step: every network but the discriminator minimises Eq. 14
(:class:`~reanimate.training.mmfa_objective.MMFAGeneratorObjective`) with one Adam
(``betas = (0.5, 0.9)``, ``lr = 5e-5``), then the discriminator takes its own step (G/D
alternation). The VGG-Face part of the perceptual loss needs ``--vgg-face-weights``
(:func:`vgg_face_network` decides). The training frames carry face-mesh head-pose labels
(:class:`~reanimate.data.head_poses.HeadPoseLabels`, computed once and cached beside the
videos). The step's random TPS (Eq. 15) and similarity (Eq. 7) come from the step's own
generator.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from ..data.head_poses import HeadPoseLabels
from ..errors import ReanimateError
from ..geometry.tps import ThinPlateSpline
from ..models.mmfa import MMFAConfig, build_mmfa
from ..models.mmfa.model import PART_NAMES
from . import distributed
from .logger import image_grid
from .loop import TrainingLoop
from .mmfa_config import MMFATrainConfig
from .mmfa_objective import MMFADiscriminatorObjective, MMFAGeneratorObjective, image_heads
from .run_options import TrainOptions
from .vgg import load_vgg19
from .vgg_face import VGG_FACE_FILE, VggFaceFeatures, load_vgg_face

log = logging.getLogger(__name__)


def vgg_face_network(
    weight: float, weights_file: str | None, *, warn: bool = True
) -> tuple[VggFaceFeatures | None, str]:
    """The VGG-Face network of the ``vgg_face`` term (supp. A.2) and a note on its source.

    Args:
        weight: ``train_params.loss_weights.vgg_face``.
        weights_file: ``--vgg-face-weights`` (``vgg_face_dag.pth``), or None.
        warn: log the warnings (on the main rank only).

    A zero weight builds no network (``"not used"``). A non-zero weight without a file
    leaves the term out with one warning (``"left out: no --vgg-face-weights"``): random
    VGG-Face features would know nothing about faces, and the VGG-19 pyramid still
    measures the full-size output. Otherwise the file is loaded; errors in it raise
    :class:`~reanimate.errors.CheckpointError`.
    """
    if weight == 0:
        if weights_file and warn:
            log.warning("--vgg-face-weights %s is not used: train_params.loss_weights.vgg_face is 0", weights_file)
        return None, "not used"
    if not weights_file:
        if warn:
            log.warning(
                "train_params.loss_weights.vgg_face is %g but no --vgg-face-weights FILE (%s) was given: the "
                "VGG-Face term is left out (the VGG-19 pyramid still measures the full-size output)",
                weight,
                VGG_FACE_FILE,
            )
        return None, "left out: no --vgg-face-weights"
    return load_vgg_face(weights_file)


class MMFATrainer(TrainingLoop):
    """MMFA from an :class:`MMFAConfig` whose document has ``train_params`` and
    ``dataset_params``. Use :func:`reanimate.training.loop.train` / ``resume``."""

    def __init__(self, config: MMFAConfig, run_dir, options: TrainOptions):
        try:
            train_config = MMFATrainConfig.from_dict(config.raw.get("train_params"))
        except (ValueError, TypeError) as exc:
            raise ReanimateError(f"{config.name}: {exc}") from None
        super().__init__(config, run_dir, options, train_config)

    @staticmethod
    def config_from_document(doc: dict, name: str) -> MMFAConfig:
        return MMFAConfig.from_document(doc, name=name)

    def wrap_dataset(self, videos):
        return HeadPoseLabels(videos, progress=self.options.progress and self.context.is_main)

    def build(self) -> None:
        config, options, tc = self.config, self.options, self.train_config
        if options.backbone_weights:
            raise ReanimateError("--backbone-weights is for the motion transformer, not MMFA")
        self.model = build_mmfa(config, with_discriminator=tc.uses_gan, seed=options.seed)
        if options.init:
            from ..checkpoint import load_own_into

            load_own_into(options.init, self.model)
        self.model.to(self.device)
        if options.channels_last:
            self.model.to(memory_format=torch.channels_last)
        for name in PART_NAMES:
            setattr(self.model, name, distributed.sync_batchnorm(getattr(self.model, name), self.context))
        if tc.ema_decay:
            self.ema = build_mmfa(config, seed=options.seed).to(self.device)

        vgg = None
        if any(w != 0 for w in tc.loss_weights.perceptual):
            vgg, self.vgg_source = load_vgg19(options.vgg_weights)
            vgg.to(self.device)
        imagenet = vgg is not None and not self.vgg_source.startswith("random")
        ms_ssim = tc.loss_weights.ms_ssim_weight(imagenet)
        if ms_ssim and self.context.is_main:
            log.warning("adding 1 - MS-SSIM with weight %g to the loss (loss_weights.ms_ssim)", ms_ssim)
        vgg_face, vgg_face_source = vgg_face_network(
            tc.loss_weights.vgg_face, options.vgg_face_weights, warn=self.context.is_main
        )
        if vgg_face is not None:
            vgg_face.to(self.device)
            self.vgg_source = f"{self.vgg_source}; VGG-Face {vgg_face_source}"
        landmark_net, groups = None, None
        if tc.uses_landmarks:
            from ..faces.landmark_net import LANDMARK_GROUPS, FaceLandmarkNet

            landmark_net, groups = FaceLandmarkNet.from_mediapipe().to(self.device), LANDMARK_GROUPS
        self.generator_objective = MMFAGeneratorObjective(
            self.model, tc, vgg, ms_ssim, landmark_net, groups, vgg_face=vgg_face
        ).to(self.device)
        self.generator_step = distributed.wrap(self.generator_objective, self.context)
        self.discriminator_step = None
        betas = tuple(tc.betas)
        self.optimizers = {
            "generator": self.adam(self.averaged_networks(self.model).parameters(), tc.lr, betas),
        }
        if tc.uses_gan:
            self.discriminator_step = distributed.wrap(
                MMFADiscriminatorObjective(self.model.discriminator, tc, config.appearance.num_channels).to(
                    self.device
                ),
                self.context,
            )
            self.optimizers["discriminator"] = self.adam(
                self.model.discriminator.parameters(), tc.lr_discriminator, betas
            )

    @staticmethod
    def averaged_networks(model) -> nn.ModuleList:
        """Every network but the discriminator."""
        return nn.ModuleList([getattr(model, name) for name in PART_NAMES])

    def _poses(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["source_pose"].to(self.device), batch["driving_pose"].to(self.device)

    def inference_forward(self, models, batch: dict) -> None:
        source, driving = self._to_device(batch["source"]), self._to_device(batch["driving"])
        source_pose, driving_pose = self._poses(batch)
        labels = self.train_config.rotation == "labels"
        for model in models:
            feature = model.appearance(source)
            canonical = model.canonical(source)
            src, _ = image_heads(model, source, canonical, source_pose if labels else None)
            drv, _ = image_heads(model, driving, canonical, driving_pose if labels else None)
            motion = model.dense_motion(feature, src.keypoints, drv.keypoints)
            model.generator(feature, motion.deformation, motion.occlusion, model.generator.encode_source(source))

    def train_step(self, batch: dict):
        tc = self.train_config
        source, driving = self._to_device(batch["source"]), self._to_device(batch["driving"])
        source_pose, driving_pose = self._poses(batch)
        gen = self.step_generator()
        t, a = tc.transform_params, tc.expression_augmentation
        b = source.shape[0]
        transform = ThinPlateSpline.random(b, t.sigma_affine, t.sigma_tps, t.points_tps, generator=gen).to(self.device)
        augment = ThinPlateSpline.random_similarity(b, a.rotation, a.scale, a.translation, generator=gen).to(
            self.device
        )
        with self.generator_objective.frozen_discriminator(), self._autocast():
            losses, generated = self.generator_step(source, driving, source_pose, driving_pose, transform, augment)
        values = self.generator_update(losses, ["generator"])
        if self.discriminator_step is not None:
            with self._autocast():
                d_losses = self.discriminator_step(driving, generated.prediction)
            values.update(self.discriminator_update(d_losses))
        self.end_step()
        return values, generated, source, driving

    def log_images(self, logger, generated, source, driving) -> None:
        # The source image moved by the volume's motion, its x, y averaged over depth.
        flow = generated.deformation.detach()[..., :2].float().mean(dim=1).permute(0, 3, 1, 2)
        flow = F.interpolate(flow, size=source.shape[2:], mode="bilinear", align_corners=True).permute(0, 2, 3, 1)
        generated.deformed = F.grid_sample(source.float(), flow, align_corners=self.config.generator.align_corners)
        logger.images(self.state.step, image_grid(source, driving, generated))


__all__ = ["MMFATrainer", "vgg_face_network"]
