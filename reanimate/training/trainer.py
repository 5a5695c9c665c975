"""FOMM's training (the official ``run.py --mode train``) on the shared loop
(:mod:`reanimate.training.loop`).

One step (reference ``train.py``): the keypoint detector and generator minimise the
weighted sum of their losses (:class:`GeneratorObjective`) with Adam, then, for the
``-adv`` configs, the discriminator takes its own step (:class:`DiscriminatorObjective`).
Learning rates decay by 0.1 at the config's epoch milestones. An epoch is one pass over
the training videos repeated ``num_repeats`` times. The random TPS of the equivariance
losses is drawn from the step's own generator, so resumption is exact.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from .. import checkpoint as model_checkpoint
from ..errors import ReanimateError
from ..geometry.tps import ThinPlateSpline
from ..models import ModelConfig, build_model
from . import distributed
from .config import ADAM_BETAS, TrainConfig
from .logger import image_grid
from .loop import TrainingLoop, resume, train
from .objectives import DiscriminatorObjective, GeneratorObjective
from .run_options import TrainOptions, TrainResult
from .vgg import load_vgg19

log = logging.getLogger(__name__)


class Trainer(TrainingLoop):
    """FOMM (and the Motion Transformer) from a :class:`ModelConfig` with ``train_params``
    and ``dataset_params``. Use :func:`train` / :func:`resume`."""

    def __init__(self, config: ModelConfig, run_dir, options: TrainOptions):
        super().__init__(config, run_dir, options, TrainConfig.from_dict(config.raw.get("train_params")))

    @staticmethod
    def config_from_document(doc: dict, name: str) -> ModelConfig:
        return ModelConfig.from_dict(doc, name=name)

    def build(self) -> None:
        config, options, tc = self.config, self.options, self.train_config
        self.model = build_model(config, with_discriminator=tc.uses_gan, seed=options.seed)
        if options.backbone_weights:
            self._load_backbone(options.backbone_weights)
        if options.init:
            self._init_from(options.init)
        self.model.to(self.device)
        if options.channels_last:
            self.model.to(memory_format=torch.channels_last)
        kp_detector = distributed.sync_batchnorm(self.model.kp_detector, self.context)
        generator = distributed.sync_batchnorm(self.model.generator, self.context)
        self.model.kp_detector, self.model.generator = kp_detector, generator
        if tc.ema_decay:  # the averaged networks (train_params.ema_decay)
            self.ema = build_model(config, seed=options.seed).to(self.device)
            if options.channels_last:
                self.ema.to(memory_format=torch.channels_last)

        vgg = None
        if any(w != 0 for w in tc.loss_weights.perceptual):
            vgg, self.vgg_source = load_vgg19(options.vgg_weights)
            vgg.to(self.device)
        imagenet = vgg is not None and not self.vgg_source.startswith("random")
        ms_ssim = tc.loss_weights.ms_ssim_weight(imagenet)
        if ms_ssim and self.context.is_main:
            log.warning("adding 1 - MS-SSIM with weight %g to the loss (loss_weights.ms_ssim)", ms_ssim)
        self.generator_objective = GeneratorObjective(
            kp_detector, generator, self.model.discriminator, tc, vgg, ms_ssim, config.align_corners
        ).to(self.device)
        self.generator_step = distributed.wrap(self.generator_objective, self.context)
        self.discriminator_step = None
        if tc.uses_gan:
            self.discriminator_step = distributed.wrap(
                DiscriminatorObjective(self.model.discriminator, tc).to(self.device), self.context
            )
        self.optimizers = {
            "generator": self.adam(generator.parameters(), tc.lr_generator, ADAM_BETAS),
            "kp_detector": self.adam(kp_detector.parameters(), tc.lr_kp_detector, ADAM_BETAS),
        }
        if tc.uses_gan:
            self.optimizers["discriminator"] = self.adam(
                self.model.discriminator.parameters(), tc.lr_discriminator, ADAM_BETAS
            )

    def _load_backbone(self, path: str) -> None:
        """ImageNet weights for the motion transformer's HRNet backbone (MoTrans Sec. 4)."""
        from ..models.hrnet import load_imagenet_backbone
        from ..models.motion_transformer import MotionTransformer

        estimator = self.model.kp_detector
        if not isinstance(estimator, MotionTransformer) or not estimator.config.backbone.startswith("hrnet"):
            raise ReanimateError(
                "--backbone-weights needs a config with motion_estimator: transformer and an hrnet backbone"
            )
        count = load_imagenet_backbone(estimator.backbone, path, estimator.config.backbone)
        if self.context.is_main:
            log.info("motion transformer backbone: %d tensors from %s", count, path)

    def _init_from(self, path: str) -> None:
        """Fine-tuning: networks from a checkpoint, everything else fresh."""
        loaded = model_checkpoint.load(path, self.config, with_discriminator=True)
        for name, module in self.model.parts().items():
            source = loaded.parts().get(name)
            if source is None:
                log.warning("%s has no %s weights; it starts from a random init", path, name)
                continue
            module.load_state_dict(source.state_dict())

    @staticmethod
    def averaged_networks(model) -> nn.ModuleList:
        """What is trained by the generator's optimisers: detector and generator."""
        return nn.ModuleList([model.kp_detector, model.generator])

    def inference_forward(self, models, batch: dict) -> None:
        source, driving = self._to_device(batch["source"]), self._to_device(batch["driving"])
        for model in models:
            model.generator(
                source,
                kp_driving=model.kp_detector(driving),
                kp_source=model.kp_detector(source),
                return_deformed=False,
                driving=driving,
            )

    def train_step(self, batch: dict):
        tc = self.train_config
        source, driving = self._to_device(batch["source"]), self._to_device(batch["driving"])
        gen = self.step_generator()
        t = tc.transform_params
        transform = ThinPlateSpline.random(
            source.shape[0], t.sigma_affine, t.sigma_tps, t.points_tps, generator=gen
        ).to(self.device)
        bg_transform = None
        if tc.loss_weights.bg_equivariance != 0:  # drawn after the TPS: runs without it are unchanged
            bg_transform = ThinPlateSpline.random(source.shape[0], t.sigma_bg_affine, generator=gen).to(self.device)
        with self.generator_objective.frozen_discriminator(), self._autocast():
            losses, generated = self.generator_step(source, driving, transform, bg_transform)
        # as the reference: a zero rate freezes the detector
        stepped = ["generator"] + (["kp_detector"] if tc.lr_kp_detector != 0 else [])
        values = self.generator_update(losses, stepped)
        if self.discriminator_step is not None:
            with self._autocast():
                d_losses = self.discriminator_step(driving, generated.output.prediction, generated.kp_driving)
            values.update(self.discriminator_update(d_losses))
        self.end_step()
        return values, generated, source, driving

    def log_images(self, logger, generated, source, driving) -> None:
        with torch.no_grad():
            generated.output.deformed = self.model.generator.warp(source, generated.output.deformation)
        logger.images(self.state.step, image_grid(source, driving, generated))


__all__ = ["TrainOptions", "TrainResult", "Trainer", "resume", "train"]
