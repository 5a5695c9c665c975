"""Training hyper-parameters of MMFA: the ``train_params`` section of ``configs/mmfa/*.yaml``.

The paper's constants (003, §3.4 and supp. B.2) appear once here: Adam with
``betas = (0.5, 0.9)`` and learning rate ``5e-5``; the loss of Eq. 14. Weights the paper
does not give are face-vid2vid's where it has the term (its public re-implementation's
vox-256 config: perceptual 10 per VGG-19 layer, GAN 1, feature matching 10,
equivariance 10, keypoint prior 10, head pose 20, deformation 5 on the L1 norm of the
whole ``(K, 3)`` deformation — :func:`~reanimate.training.head_losses.deformation_prior_loss`
is its mean, so the same weight is ``5 * 3K``) and this project's choices otherwise
(``expression``, ``canonical``, ``landmark``: documented in the shipped configs).

Keys (all optional):

``lr`` (5e-5), ``lr_discriminator`` (5e-5), ``betas`` ([0.5, 0.9])
``rotation`` (``labels``)
    Where Eq. 5's rotation comes from while training: ``labels``, the face-mesh
    pseudo-labels of the frames (:mod:`reanimate.data.head_poses`, the paper's pretrained
    estimator), or ``learned``, the model's own binned head (``head_pose_params.learn_rotation``).
``scales`` ([1, 0.5, 0.25, 0.125])
    The down-sampling pyramid of the VGG-19 loss, applied to each output of the
    multi-scale generator and to the driving frame at that output's size (Eq. 6).
``transform_params``
    The random TPS of the equivariance loss (FOMM's).
``expression_augmentation`` (``{rotation: 15, scale: 0.1, translation: 0.1}``)
    The random similarity that makes ``D'`` of Eq. 7: degrees, relative scale, fraction
    of the half-width (uniform in +-).
``landmark_groups_weights`` / ``loss_weights.landmark``
    ``{face, mouth, pupil}`` weights of Eq. 9 (0: the landmark network is not run).
``loss_weights.ms_ssim`` (``auto``)
    As FOMM's: 1 - MS-SSIM with weight 10 on the full-size output when the VGG-19 has no
    ImageNet weights, else 0.
``loss_weights.reconstruction`` (0)
    Not in the paper: ``reconstruction * mean|G - D|``, the pixel L1 of the full-size
    output against the driving frame (images in [0, 1]). The shipped ``heads-64`` CPU
    config uses it: with a random-init VGG-19 (no ImageNet weights offline) the
    perceptual pyramid alone left an hour's outputs soft.
``loss_weights.vgg_face`` (0)
    The VGG-Face term of supp. A.2, on the full-size output only:
    ``vgg_face * sum_i mean|phi_i(G) - phi_i(D)|`` over VGG-Face's relu1_1 ... relu5_1
    (:mod:`reanimate.training.vgg_face`; both images resized to its 224x224 input).
    Its weights (``vgg_face_dag.pth``) are not shipped: pass them with
    ``reanimate train --vgg-face-weights FILE``. Without that file a non-zero weight
    leaves the term out, with one warning, and training goes on (the VGG-19 pyramid
    still measures the full-size output); with 0 no VGG-Face network is built. The
    shipped ``vox-256`` config sets 10, the VGG-19 per-layer weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .config import LoopConfig, TransformParams, ms_ssim_weight

MMFA_ADAM_BETAS = (0.5, 0.9)  # MMFA supp. B.2
MMFA_LR = 5e-5  # MMFA supp. B.2
ROTATION_SOURCES = ("labels", "learned")


@dataclass
class ExpressionAugmentation:
    rotation: float = 15.0
    scale: float = 0.1
    translation: float = 0.1


@dataclass
class MMFALossWeights:
    perceptual: list[float] = field(default_factory=lambda: [10.0, 10.0, 10.0, 10.0, 10.0])
    vgg_face: float = 0.0
    reconstruction: float = 0.0
    ms_ssim: float | str = "auto"
    generator_gan: float = 1.0
    discriminator_gan: float = 1.0
    feature_matching: list[float] = field(default_factory=lambda: [10.0, 10.0, 10.0, 10.0])
    equivariance: float = 10.0
    keypoint_prior: float = 10.0
    deformation_prior: float = 225.0  # face-vid2vid's 5 on the L1 norm of 15 x 3 values
    expression: float = 10.0
    canonical: float = 10.0
    head_pose: float = 20.0
    landmark: dict[str, float] = field(default_factory=lambda: {"face": 0.0, "mouth": 0.0, "pupil": 0.0})

    def ms_ssim_weight(self, imagenet_vgg: bool) -> float:
        return ms_ssim_weight(self.ms_ssim, self.perceptual, imagenet_vgg)


@dataclass
class MMFATrainConfig(LoopConfig):
    """The fields the shared loop reads (:class:`~reanimate.training.config.LoopConfig`)
    plus MMFA's own."""

    batch_size: int = 16
    checkpoint_freq: int = 10
    lr: float = MMFA_LR
    lr_discriminator: float = MMFA_LR
    betas: list[float] = field(default_factory=lambda: list(MMFA_ADAM_BETAS))
    rotation: str = "labels"
    scales: list[float] = field(default_factory=lambda: [1, 0.5, 0.25, 0.125])
    transform_params: TransformParams = field(default_factory=TransformParams)
    expression_augmentation: ExpressionAugmentation = field(default_factory=ExpressionAugmentation)
    loss_weights: MMFALossWeights = field(default_factory=MMFALossWeights)

    SECTIONS: ClassVar[dict[str, type]] = {
        "transform_params": TransformParams,
        "expression_augmentation": ExpressionAugmentation,
        "loss_weights": MMFALossWeights,
    }

    def validate(self) -> None:
        super().validate()
        if self.rotation not in ROTATION_SOURCES:
            raise ValueError(f"train_params.rotation must be one of {ROTATION_SOURCES}, got {self.rotation!r}")
        unknown = set(self.loss_weights.landmark) - {"face", "mouth", "pupil"}
        if unknown:
            raise ValueError(
                f"train_params.loss_weights.landmark: unknown groups {sorted(unknown)} (face, mouth, pupil)"
            )

    @property
    def uses_gan(self) -> bool:
        return self.loss_weights.generator_gan != 0

    @property
    def uses_landmarks(self) -> bool:
        return any(w != 0 for w in self.loss_weights.landmark.values())


__all__ = ["ExpressionAugmentation", "MMFALossWeights", "MMFATrainConfig", "MMFA_ADAM_BETAS", "MMFA_LR"]
