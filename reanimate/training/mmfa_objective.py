"""MMFA's training step objects (paper 003, Eq. 14), as modules so that DDP can wrap them.

:class:`MMFAGeneratorObjective` computes, for one (source, driving) batch with the
frames' head-pose labels, Eq. 5's keypoints of both frames, the dense motion and the
multi-scale output, and the weighted losses of every network but the discriminator;
:class:`MMFADiscriminatorObjective` the discriminator's least-squares loss. Every value
returned is already multiplied by its weight (:class:`~reanimate.training.mmfa_config.MMFALossWeights`).

The perceptual loss of supp. A.2 has two parts: ``perceptual``, VGG-19 on a
down-sampling pyramid of every output scale, and ``vgg_face``, VGG-Face on the
full-size output only (:class:`~reanimate.training.vgg_face.VggFaceFeatures`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry.keypoints3d import orthographic_projection, warped_rotation
from ..geometry.tps import ThinPlateSpline
from ..models.blocks import ImagePyramid
from ..models.mmfa import MMFAModel
from ..models.mmfa.head_pose import ANGLE_BIN_CENTRES
from ..models.mmfa.model import PART_NAMES
from ..motion import HeadMotion, Keypoints
from .head_losses import (
    canonical_consistency_loss,
    deformation_prior_loss,
    expression_similarity_loss,
    head_pose_bins_loss,
    keypoint_prior_loss,
    landmark_loss,
    projected_equivariance_loss,
)
from .losses import (
    discriminator_gan_loss,
    feature_matching_loss,
    generator_gan_loss,
    ms_ssim_loss,
    perceptual_loss,
    transform_frame,
)
from .mmfa_config import MMFATrainConfig
from .vgg_face import FEATURE_LAYERS as VGG_FACE_LAYERS


@dataclass
class MMFAHeads:
    """Eq. 5 for a batch: the head of each frame and its keypoints ``(B, K, 3)``."""

    head: HeadMotion
    keypoints: torch.Tensor
    feature: torch.Tensor  # (B, F) expression feature f_delta


def image_heads(
    model: MMFAModel, image: torch.Tensor, canonical: torch.Tensor, angles: torch.Tensor | None
) -> tuple[MMFAHeads, object]:
    """Eq. 4-5 for ``image`` with the identity's ``canonical`` keypoints: scale and
    translation from the pose head, rotation ``angles`` (degrees) when given, else the
    head's learned bins. Returns the heads and the pose head's output."""
    pose = model.head_pose(image)
    if angles is None:
        if pose.angle_logits is None:
            raise ValueError("no rotation: give angles or build the head pose network with learn_rotation")
        angles = pose.angles
    feature = model.expression_encoder(image)
    delta = model.expression_decoder(feature, canonical)
    head = HeadMotion(canonical, angles.to(canonical), pose.scale, pose.translation, delta)
    return MMFAHeads(head, head.points(), feature), pose


@dataclass
class MMFAOutput:
    """What a generator step produced (for the discriminator step and the image log):
    the generator's outputs and the 2-D keypoints of source and driving."""

    images: dict[int, torch.Tensor]
    occlusion_map: torch.Tensor | None
    kp_source: Keypoints
    kp_driving: Keypoints
    deformation: torch.Tensor | None = None  # (B, D, h, w, 3) the volume's backward grid
    deformed: torch.Tensor | None = None  # (B, 3, H, W) the source warped by it (for the image log)

    @property
    def prediction(self) -> torch.Tensor:
        return self.images[max(self.images)]

    @property
    def output(self) -> MMFAOutput:  # the interface of reanimate.training.logger.image_grid
        return self


class MMFAGeneratorObjective(nn.Module):
    """``forward(source, driving, source_pose, driving_pose, transform, augment) ->
    (losses, MMFAOutput)``: frames ``(B, 3, H, W)`` in [0, 1], poses ``(B, 3)`` degrees
    (the labels), ``transform`` the random TPS of Eq. 15, ``augment`` the random
    similarity of Eq. 7 (both drawn by the caller so that a run is reproducible).

    ``vgg`` measures the ``perceptual`` term (None: left out); ``vgg_face``
    (:func:`~reanimate.training.vgg_face.load_vgg_face`) the ``vgg_face`` term, which is
    computed when it is given and ``loss_weights.vgg_face`` is not zero."""

    def __init__(
        self,
        model: MMFAModel,
        config: MMFATrainConfig,
        vgg: nn.Module | None,
        ms_ssim_weight: float = 0.0,
        landmark_net: nn.Module | None = None,
        landmark_groups: dict[str, tuple[int, ...]] | None = None,
        vgg_face: nn.Module | None = None,
    ):
        super().__init__()
        # The networks this objective trains are submodules (DDP reduces their gradients);
        # the discriminator is not (its own objective trains it).
        self.networks = nn.ModuleDict({name: getattr(model, name) for name in PART_NAMES})
        self._model = (model,)
        self.config = config
        self.weights = config.loss_weights
        used = [i for i, weight in enumerate(self.weights.perceptual) if weight != 0]
        self.vgg = vgg if used else None
        self.perceptual_layers = used[-1] + 1 if used else 0
        self.vgg_face = vgg_face if self.weights.vgg_face != 0 else None
        self.pyramid = ImagePyramid(config.scales, model.config.appearance.num_channels)
        self.ms_ssim_weight = ms_ssim_weight
        self._landmarks = (landmark_net, landmark_groups or {})  # frozen, not a submodule
        self.align_corners = model.config.generator.align_corners
        if config.uses_gan and model.discriminator is None:
            raise ValueError("loss_weights.generator_gan is set but the model has no discriminator")
        if config.uses_landmarks and landmark_net is None:
            raise ValueError("loss_weights.landmark is set but no landmark network was given")
        if self.weights.head_pose and not model.config.head_pose.learn_rotation:
            raise ValueError("loss_weights.head_pose needs head_pose_params.learn_rotation")
        self._discriminator = (model.discriminator,)

    def _angles(self, labels: torch.Tensor) -> torch.Tensor | None:
        return labels if self.config.rotation == "labels" else None

    def forward(
        self,
        source: torch.Tensor,
        driving: torch.Tensor,
        source_pose: torch.Tensor,
        driving_pose: torch.Tensor,
        transform: ThinPlateSpline | None = None,
        augment: ThinPlateSpline | None = None,
    ) -> tuple[dict[str, torch.Tensor], MMFAOutput]:
        m, w = self._model[0], self.weights
        feature = m.appearance(source)
        canonical = m.canonical(source)
        src, pose_s = image_heads(m, source, canonical, self._angles(source_pose))
        drv, pose_d = image_heads(m, driving, canonical, self._angles(driving_pose))
        motion = m.dense_motion(feature, src.keypoints, drv.keypoints)
        out = m.generator(feature, motion.deformation, motion.occlusion, m.generator.encode_source(source))
        generated = MMFAOutput(
            out.images,
            motion.occlusion,
            Keypoints(orthographic_projection(src.keypoints)),
            Keypoints(orthographic_projection(drv.keypoints)),
            deformation=motion.deformation,
        )
        losses: dict[str, torch.Tensor] = {}

        # Eq. 6: the VGG-19 pyramid loss at every output scale.
        if self.vgg is not None:
            features = functools.partial(self.vgg, num_layers=self.perceptual_layers)
            layer_weights = w.perceptual[: self.perceptual_layers]
            total = 0
            for size, image in out.images.items():
                real = driving if size == driving.shape[2] else _resize(driving, image.shape[2:])
                total = total + perceptual_loss(features, self.pyramid(image), self.pyramid(real), layer_weights)
            losses["perceptual"] = total
        if self.vgg_face is not None:  # supp. A.2: VGG-Face on the full-size output G only
            # sum_i mean|phi_i(G) - phi_i(D)| over its five layers, all weighted alike;
            # the network resizes both images to its 224x224 input itself.
            layer_weights = [w.vgg_face] * len(VGG_FACE_LAYERS)
            losses["vgg_face"] = perceptual_loss(self.vgg_face, {1: out.prediction}, {1: driving}, layer_weights)
        if w.reconstruction:  # not in the paper (training/mmfa_config.py)
            losses["reconstruction"] = w.reconstruction * (out.prediction - driving).abs().mean()
        if self.ms_ssim_weight:
            losses["ms_ssim"] = self.ms_ssim_weight * ms_ssim_loss(out.prediction, driving)

        if w.generator_gan != 0:
            discriminator = self._discriminator[0]
            fake = discriminator(self.pyramid(out.prediction))
            losses["generator_gan"] = w.generator_gan * generator_gan_loss(fake)
            if any(v != 0 for v in w.feature_matching):
                real = discriminator(self.pyramid(driving))
                losses["feature_matching"] = feature_matching_loss(real, fake, w.feature_matching)

        if w.keypoint_prior:
            losses["keypoint_prior"] = w.keypoint_prior * keypoint_prior_loss(drv.keypoints)
        if w.deformation_prior:
            losses["deformation_prior"] = w.deformation_prior * deformation_prior_loss(drv.head.expression)

        canonical_driving = None
        if w.canonical or w.equivariance:
            canonical_driving = m.canonical(driving)
        if w.canonical:  # Eq. 8
            losses["canonical"] = w.canonical * canonical_consistency_loss(canonical, canonical_driving)

        if w.equivariance:  # Eq. 15, each frame with its own canonical keypoints
            if transform is None:
                raise ValueError("the equivariance loss needs a transform")
            transformed = transform_frame(driving, transform, align_corners=self.align_corners)
            angles = self._angles(driving_pose)
            angles_t = None if angles is None else warped_rotation(angles, transform.affine[:, :, :2])
            own, _ = image_heads(m, driving, canonical_driving, angles)
            warped, _ = image_heads(m, transformed, m.canonical(transformed), angles_t)
            losses["equivariance"] = w.equivariance * projected_equivariance_loss(
                own.keypoints, warped.keypoints, transform
            )

        if w.expression:  # Eq. 7
            if augment is None:
                raise ValueError("the expression loss needs an augmentation transform")
            augmented = transform_frame(driving, augment, align_corners=self.align_corners)
            losses["expression"] = w.expression * expression_similarity_loss(
                drv.feature, m.expression_encoder(augmented)
            )

        if w.head_pose:
            target = torch.cat([source_pose, driving_pose])
            logits = torch.cat([pose_s.angle_logits, pose_d.angle_logits])
            bins = ANGLE_BIN_CENTRES.to(logits)
            losses["head_pose"] = w.head_pose * head_pose_bins_loss(logits.float(), target.float(), bins)

        if self.config.uses_landmarks:  # Eq. 9
            net, groups = self._landmarks
            with torch.no_grad():
                real_landmarks = net(driving)
            fake_landmarks = net(out.prediction)
            for name, value in landmark_loss(
                fake_landmarks, real_landmarks, groups, w.landmark, float(driving.shape[-1])
            ).items():
                losses[f"landmark_{name}"] = value
        return losses, generated

    def frozen_discriminator(self):
        from .objectives import _Frozen

        return _Frozen(self._discriminator[0])


def _resize(image: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(image, size=tuple(size), mode="area")


class MMFADiscriminatorObjective(nn.Module):
    """``forward(driving, prediction) -> {"discriminator_gan": loss}`` (least squares,
    supp. A.2); the prediction is detached here."""

    def __init__(self, discriminator: nn.Module, config: MMFATrainConfig, num_channels: int = 3):
        super().__init__()
        self.discriminator = discriminator
        self.weight = config.loss_weights.discriminator_gan
        self.pyramid = ImagePyramid(config.scales, num_channels)

    def forward(self, driving: torch.Tensor, prediction: torch.Tensor) -> dict[str, torch.Tensor]:
        real = self.discriminator(self.pyramid(driving))
        fake = self.discriminator(self.pyramid(prediction.detach()))
        return {"discriminator_gan": self.weight * discriminator_gan_loss(real, fake)}


__all__ = ["MMFADiscriminatorObjective", "MMFAGeneratorObjective", "MMFAHeads", "MMFAOutput", "image_heads"]
