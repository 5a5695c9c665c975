"""Training hyper-parameters: the ``train_params`` section of the official FOMM YAML.

Keys and defaults follow the reference ``train.py`` / ``modules/model.py``; the FOMM
paper's constants (Sec. 3.3, supplementary B.2) live here once:

- Adam with ``betas = (0.5, 0.999)``, learning rates ``lr_*`` (2e-4), decayed by
  ``gamma = 0.1`` at the ``epoch_milestones``;
- ``transform_params``: the random TPS of the equivariance losses, ``sigma_affine`` 0.05,
  ``sigma_tps`` 0.005 on a ``points_tps`` = 5 x 5 control grid;
- ``loss_weights``: perceptual per VGG layer, equivariance value / Jacobian, GAN and
  feature matching.

Additions of this project (all optional):

``loss_weights.ms_ssim`` (default ``auto``)
    Weight of ``1 - MS-SSIM`` between prediction and driving frame. ``auto`` means 0
    with ImageNet VGG-19 weights and 10 when only a random-init VGG-19 is available:
    random conv features still measure structure, MS-SSIM adds the luminance/contrast
    terms they lack (see ``training/vgg.py``).
``loss_weights.bg_fg_mask``, ``loss_weights.fg_mask_concentration`` (default 0: off)
    The Motion Transformer's background losses (Sec. 3.3, Eq. 11 and 12; the keys of the
    authors' MTIA configs) on the dense motion masks: weights of
    :func:`~reanimate.training.losses.background_mask_loss` and
    :func:`~reanimate.training.losses.mask_concentration_loss`. The paper's Eq. 13 uses
    one ``lambda`` = 0.1 for both, on TaiChiHD only (``configs/motrans/taichi-256.yaml``).
``loss_weights.bg_equivariance`` (default 0: off), ``transform_params.sigma_bg_affine`` (0.1)
    Equivariance for the background motion predictor, in the spirit of FOMM's keypoint
    equivariance: the driving frame warped by a random affine map ``T`` (entries
    ``N(0, sigma_bg_affine)`` around the identity) must give back ``T``:
    ``mean |bg_predictor(driving, T(driving)) - T|``. The reconstruction loss alone gives
    its zero-initialised head no consistent direction on camera motions of several
    pixels (see ``benchmarks/background_motion.py``).
``log_freq`` (steps, default 100), ``image_freq`` (steps, default 1000)
    TensorBoard scalars and image grids.
``checkpoint_freq`` (epochs, reference default 50); ``checkpoint_steps`` (default 0: off)
    also checkpoint every N steps.
``num_workers`` (default 4) data-loading processes per rank.
``precise_bn_batches`` (default 100; 0: off)
    Before each checkpoint is written, the BatchNorm running statistics are recomputed
    from this many training batches (at most one epoch's) with the current weights, as
    inference runs the networks (:mod:`~reanimate.training.batchnorm`). The reference
    keeps the moving average of training, which can leave eval mode far from what was
    trained with small batches. Parameters and the training stream are unchanged.
``ema_decay`` (default 0: off)
    Keep an exponential moving average of the keypoint detector's and generator's
    weights (:mod:`~reanimate.training.ema`, with timm's warm-up), written beside each
    checkpoint's ``model.safetensors`` as ``model_ema.safetensors`` (an ordinary model
    file) and restored by ``--resume``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..models.config import dataclass_from_dict

log = logging.getLogger(__name__)

ADAM_BETAS = (0.5, 0.999)  # reference train.py
LR_DECAY = 0.1  # MultiStepLR gamma of the reference train.py
MS_SSIM_WITHOUT_IMAGENET_VGG = 10.0


def ms_ssim_weight(setting: float | str, perceptual: list[float], imagenet_vgg: bool) -> float:
    """``loss_weights.ms_ssim``: a number, or ``auto``: 0 with ImageNet VGG-19 weights (or no
    perceptual loss), :data:`MS_SSIM_WITHOUT_IMAGENET_VGG` with a random-init VGG-19."""
    if setting == "auto":
        uses_vgg = any(w != 0 for w in perceptual)
        return 0.0 if imagenet_vgg or not uses_vgg else MS_SSIM_WITHOUT_IMAGENET_VGG
    return float(setting)


@dataclass
class TransformParams:
    """Random TPS of the equivariance losses (FOMM supp. B.2)."""

    sigma_affine: float = 0.05
    sigma_tps: float | None = 0.005
    points_tps: int | None = 5
    sigma_bg_affine: float = 0.1  # random affine maps of loss_weights.bg_equivariance


@dataclass
class LossWeights:
    generator_gan: float = 0.0
    discriminator_gan: float = 1.0
    feature_matching: list[float] = field(default_factory=lambda: [10.0, 10.0, 10.0, 10.0])
    perceptual: list[float] = field(default_factory=lambda: [10.0, 10.0, 10.0, 10.0, 10.0])
    equivariance_value: float = 10.0
    equivariance_jacobian: float = 10.0
    ms_ssim: float | str = "auto"
    bg_fg_mask: float = 0.0  # Motion Transformer Eq. 11
    fg_mask_concentration: float = 0.0  # Motion Transformer Eq. 12
    bg_equivariance: float = 0.0  # this project's: the background predictor recovers known affine maps

    def ms_ssim_weight(self, imagenet_vgg: bool) -> float:
        return ms_ssim_weight(self.ms_ssim, self.perceptual, imagenet_vgg)


@dataclass
class LoopConfig:
    """The ``train_params`` fields the shared loop reads (:class:`reanimate.training.loop.TrainingLoop`),
    with the reference ``train.py``'s defaults; each family's config adds its own fields and
    nested sections (:attr:`SECTIONS`, each read into its dataclass) and checks
    (:meth:`validate`)."""

    num_epochs: int = 100
    num_repeats: int = 1
    epoch_milestones: list[int] = field(default_factory=list)
    batch_size: int = 40
    checkpoint_freq: int = 50
    checkpoint_steps: int = 0
    log_freq: int = 100
    image_freq: int = 1000
    num_workers: int = 4
    precise_bn_batches: int = 100
    ema_decay: float = 0.0
    lr_decay: float = LR_DECAY  # the factor of every milestone in epoch_milestones

    #: nested ``train_params`` sections: key -> dataclass
    SECTIONS: ClassVar[dict[str, type]] = {}

    @classmethod
    def from_dict(cls, params: dict[str, Any] | None):
        params = copy.deepcopy(params or {})
        sections = {name: params.pop(name, None) or {} for name in cls.SECTIONS}
        config = dataclass_from_dict(cls, params, "train_params")
        for name, kind in cls.SECTIONS.items():
            setattr(config, name, dataclass_from_dict(kind, sections[name], f"train_params.{name}"))
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ValueError (one line) for values the loop cannot run with."""
        if self.batch_size < 1 or self.num_epochs < 1 or self.num_repeats < 1:
            raise ValueError("batch_size, num_epochs and num_repeats must be at least 1")
        if self.precise_bn_batches < 0:
            raise ValueError("precise_bn_batches must be 0 (off) or more")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0: off), got {self.ema_decay}")


@dataclass
class TrainConfig(LoopConfig):
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    lr_kp_detector: float = 2e-4
    scales: list[float] = field(default_factory=lambda: [1, 0.5, 0.25, 0.125])
    transform_params: TransformParams = field(default_factory=TransformParams)
    loss_weights: LossWeights = field(default_factory=LossWeights)

    SECTIONS: ClassVar[dict[str, type]] = {"transform_params": TransformParams, "loss_weights": LossWeights}

    @property
    def uses_gan(self) -> bool:
        return self.loss_weights.generator_gan != 0

    @property
    def uses_mask_losses(self) -> bool:
        """Whether a background loss on the dense motion masks is on."""
        return self.loss_weights.bg_fg_mask != 0 or self.loss_weights.fg_mask_concentration != 0
