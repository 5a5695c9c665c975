"""Training step objects: the FOMM losses (Sec. 3.3, supplementary A.2, B.1-B.2) of one
batch, as modules so that :class:`~torch.nn.parallel.DistributedDataParallel` can wrap
them (the reference code wraps its ``GeneratorFullModel`` the same way).

With a background motion predictor in the generator, the driving frame is given to it
(MRAA / MoTrans); the Motion Transformer's background losses on the dense motion masks
(``loss_weights.bg_fg_mask``, ``fg_mask_concentration``) are added when weighted.

Every loss value returned is already multiplied by its weight from
:class:`~reanimate.training.config.LossWeights`; the step's loss is their sum.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from ..geometry.tps import ThinPlateSpline
from ..models.discriminator import MultiScaleDiscriminator
from ..models.generator import Generator, GeneratorOutput
from ..motion import Keypoints
from .config import TrainConfig
from .losses import (
    ImagePyramid,
    background_mask_loss,
    discriminator_gan_loss,
    equivariance_jacobian_loss,
    equivariance_value_loss,
    feature_matching_loss,
    generator_gan_loss,
    mask_concentration_loss,
    ms_ssim_loss,
    perceptual_loss,
    transform_frame,
)


@dataclass
class GeneratedBatch:
    """What a generator step produced, for the discriminator step and the image logs.

    prediction / deformed: ``(B, C, H, W)``; occlusion_map: ``(B, 1, h, w)`` or None;
    transformed: the TPS-warped driving frames of the equivariance loss (or None).
    """

    output: GeneratorOutput
    kp_source: Keypoints
    kp_driving: Keypoints
    transformed: torch.Tensor | None = None


class GeneratorObjective(nn.Module):
    """Losses of the keypoint detector and the generator for one (source, driving) batch.

    ``forward(source, driving, transform) -> (losses, GeneratedBatch)`` with ``source``
    and ``driving`` ``(B, C, H, W)`` in [0, 1] and ``transform`` the random TPS of the
    equivariance losses (drawn by the caller, so a run is reproducible step by step).

    The discriminator is used for the generator's GAN and feature-matching terms but is
    not a submodule: its parameters are trained by :class:`DiscriminatorObjective` and
    are frozen while this objective runs (see :meth:`frozen_discriminator`).
    """

    def __init__(
        self,
        kp_detector: nn.Module,
        generator: Generator,
        discriminator: MultiScaleDiscriminator | None,
        config: TrainConfig,
        vgg: nn.Module | None,
        ms_ssim_weight: float = 0.0,
        align_corners: bool = True,
    ):
        super().__init__()
        self.kp_detector = kp_detector
        self.generator = generator
        self._discriminator = (discriminator,)  # a tuple hides it from nn.Module registration
        self.config = config
        self.weights = config.loss_weights
        self.pyramid = ImagePyramid(config.scales, generator.config.num_channels)
        used = [i for i, weight in enumerate(self.weights.perceptual) if weight != 0]
        self.vgg = vgg if used else None
        # The VGG trunk stops after the deepest layer with a weight.
        self.perceptual_layers = used[-1] + 1 if used else 0
        self.ms_ssim_weight = ms_ssim_weight
        self.align_corners = align_corners
        if config.uses_gan and discriminator is None:
            raise ValueError("loss_weights.generator_gan is set but the model has no discriminator")
        if self.weights.bg_equivariance != 0 and (
            generator.bg_predictor is None or not any(True for _ in generator.bg_predictor.parameters())
        ):
            raise ValueError(
                "loss_weights.bg_equivariance needs a background motion predictor with weights "
                "(use_bg_predictor, bg_type shift or affine, estimator regression)"
            )
        if config.uses_mask_losses and generator.dense_motion_network is None:
            raise ValueError("loss_weights.bg_fg_mask / fg_mask_concentration need the dense motion network's masks")

    @property
    def discriminator(self) -> MultiScaleDiscriminator | None:
        return self._discriminator[0]

    def forward(
        self,
        source: torch.Tensor,
        driving: torch.Tensor,
        transform: ThinPlateSpline | None = None,
        bg_transform: ThinPlateSpline | None = None,
    ) -> tuple[dict[str, torch.Tensor], GeneratedBatch]:
        w = self.weights
        kp_source = self.kp_detector(source)
        kp_driving = self.kp_detector(driving)
        output = self.generator(
            source, kp_driving=kp_driving, kp_source=kp_source, return_deformed=False, driving=driving
        )
        generated = GeneratedBatch(output, kp_source, kp_driving)
        losses: dict[str, torch.Tensor] = {}

        pyramid_real = self.pyramid(driving)
        pyramid_generated = self.pyramid(output.prediction)
        if self.vgg is not None:
            layers = self.perceptual_layers
            features = functools.partial(self.vgg, num_layers=layers)
            losses["perceptual"] = perceptual_loss(features, pyramid_generated, pyramid_real, w.perceptual[:layers])
        if self.ms_ssim_weight:
            losses["ms_ssim"] = self.ms_ssim_weight * ms_ssim_loss(output.prediction, driving)

        if w.bg_fg_mask != 0:
            losses["bg_fg_mask"] = w.bg_fg_mask * background_mask_loss(output.mask)
        if w.fg_mask_concentration != 0:
            losses["fg_mask_concentration"] = w.fg_mask_concentration * mask_concentration_loss(output.mask)

        if w.generator_gan != 0:
            kp = kp_driving.detach()
            fake = self.discriminator(pyramid_generated, kp)
            losses["generator_gan"] = w.generator_gan * generator_gan_loss(fake)
            if any(v != 0 for v in w.feature_matching):
                real = self.discriminator(pyramid_real, kp)
                losses["feature_matching"] = feature_matching_loss(real, fake, w.feature_matching)

        if w.bg_equivariance != 0:
            if bg_transform is None:
                raise ValueError("loss_weights.bg_equivariance needs a bg_transform")
            warped = transform_frame(driving, bg_transform, align_corners=self.align_corners)
            predicted = self.generator.bg_predictor(driving, warped).float()
            losses["bg_equivariance"] = w.bg_equivariance * (predicted - bg_transform.affine).abs().mean()

        if w.equivariance_value != 0 or w.equivariance_jacobian != 0:
            if transform is None:
                raise ValueError("the equivariance losses need a transform")
            transformed = transform_frame(driving, transform, align_corners=self.align_corners)
            kp_transformed = self.kp_detector(transformed)
            generated.transformed = transformed
            if w.equivariance_value != 0:
                value = equivariance_value_loss(kp_driving, kp_transformed, transform)
                losses["equivariance_value"] = w.equivariance_value * value
            if w.equivariance_jacobian != 0 and kp_driving.jacobian is not None:
                value = equivariance_jacobian_loss(kp_driving, kp_transformed, transform)
                losses["equivariance_jacobian"] = w.equivariance_jacobian * value
        return losses, generated

    def frozen_discriminator(self) -> _Frozen:
        """Context manager: no gradients reach the discriminator's parameters."""
        return _Frozen(self.discriminator)


class DiscriminatorObjective(nn.Module):
    """Least-squares GAN loss of the multi-scale discriminator (FOMM Sec. 3.3, the
    ``-adv`` configs): ``forward(driving, prediction, kp_driving) -> {"discriminator_gan": loss}``.
    ``prediction`` and ``kp_driving`` are detached here."""

    def __init__(self, discriminator: MultiScaleDiscriminator, config: TrainConfig):
        super().__init__()
        self.discriminator = discriminator
        self.weight = config.loss_weights.discriminator_gan
        self.pyramid = ImagePyramid(discriminator.config.scales, discriminator.config.num_channels)

    def forward(
        self, driving: torch.Tensor, prediction: torch.Tensor, kp_driving: Keypoints
    ) -> dict[str, torch.Tensor]:
        kp = kp_driving.detach()
        real = self.discriminator(self.pyramid(driving), kp)
        fake = self.discriminator(self.pyramid(prediction.detach()), kp)
        return {"discriminator_gan": self.weight * discriminator_gan_loss(real, fake)}


class _Frozen:
    def __init__(self, module: nn.Module | None):
        self.params = [p for p in module.parameters() if p.requires_grad] if module is not None else []

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc_info):
        for p in self.params:
            p.requires_grad_(True)
