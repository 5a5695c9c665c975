"""Head pose estimator (MMFA Sec. 3.2): the scale ``f``, the 2-D translation ``t`` and,
optionally, the rotation as Hopenet-style yaw/pitch/roll bins (Ruiz et al. 2018) of Eq. 5,
``p = R f (p_C + delta) + t``.

MMFA takes ``R`` from a pre-trained Hopenet and learns ``f`` and ``t`` with "a simple
decoder"; face-vid2vid's head-pose estimator learns the bins itself. Both are served by
one network: a ResNet-style bottleneck encoder (face-vid2vid's sizes by default), global
average pooling and linear heads, with the bins only when ``learn_rotation``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import BottleneckEncoder

#: Hopenet's angle bins (Ruiz et al. 2018): 66 bins of 3 degrees covering [-99, 99].
ANGLE_BINS = 66
ANGLE_RANGE = (-99.0, 99.0)


def angle_bin_centres(bins: int = ANGLE_BINS) -> torch.Tensor:
    """``(bins,)`` degrees: the centres of ``bins`` equal bins covering :data:`ANGLE_RANGE`."""
    low, high = ANGLE_RANGE
    width = (high - low) / bins
    return low + width * (torch.arange(bins, dtype=torch.float32) + 0.5)


#: ``(66,)`` degrees, the centre of each Hopenet bin: -97.5, -94.5, ..., 97.5. Hopenet
#: labels an angle with bin ``floor((angle + 99) / 3)``; its published read-out
#: ``3 * sum(p_i * i) - 99`` uses the bins' lower edges, 1.5 degrees below these centres.
ANGLE_BIN_CENTRES = angle_bin_centres(ANGLE_BINS)

#: the heads start near the neutral pose (scale 1, no translation): their initial
#: weights are scaled by this factor (not zero, so that the encoder gets gradients).
HEAD_INIT_GAIN = 0.1


def angles_from_logits(logits: torch.Tensor, centres: torch.Tensor | None = None) -> torch.Tensor:
    """Angles as the expectation of the softmax over the bins (Hopenet).

    Args:
        logits: ``(B, 3, bins)`` for yaw, pitch, roll.
        centres: ``(bins,)`` degrees; default :func:`angle_bin_centres` of ``bins``
            (:data:`ANGLE_BIN_CENTRES` for Hopenet's 66).

    Returns:
        ``(B, 3)`` yaw, pitch, roll in degrees.
    """
    if centres is None:
        centres = ANGLE_BIN_CENTRES if logits.shape[-1] == ANGLE_BINS else angle_bin_centres(logits.shape[-1])
    assert logits.shape[-1] == centres.shape[0], f"logits {tuple(logits.shape)} vs {centres.shape[0]} bin centres"
    probabilities = torch.softmax(logits, dim=-1)
    return probabilities @ centres.to(device=logits.device, dtype=probabilities.dtype)


@dataclass
class HeadPoseConfig:
    """Defaults: face-vid2vid's head-pose estimator (``he_estimator_params``: 64, max
    2048, stages of 3, 4, 6, 3 bottlenecks, 66 bins)."""

    num_channels: int = 3
    stem_features: int = 64
    widths: tuple[int, ...] = (256, 512, 1024, 2048)
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    learn_rotation: bool = False  # MMFA: the rotation comes from a pre-trained Hopenet
    angle_bins: int = ANGLE_BINS
    # Where animating takes the rotation from: "learned" (the bins), "mesh" (the face mesh's
    # head pose, the pre-trained estimator's stand-in, as the paper uses its estimator at
    # test time too), or "auto": learned with learn_rotation, else the mesh.
    animate_rotation: str = "auto"

    def __post_init__(self):
        self.widths = tuple(self.widths)
        self.blocks = tuple(self.blocks)
        if self.animate_rotation not in ("auto", "learned", "mesh"):
            raise ValueError(
                f"head_pose_params.animate_rotation must be auto, learned or mesh, got {self.animate_rotation!r}"
            )
        if self.animate_rotation == "learned" and not self.learn_rotation:
            raise ValueError("head_pose_params.animate_rotation: learned needs learn_rotation: true")

    @property
    def animates_with_learned_rotation(self) -> bool:
        return self.animate_rotation == "learned" or (self.animate_rotation == "auto" and self.learn_rotation)


@dataclass
class HeadPoseOutput:
    """scale: ``(B,)`` > 0, 1 the canonical size; translation: ``(B, 2)`` x, y in the
    normalised units of the keypoints; angle_logits: ``(B, 3, bins)`` for yaw, pitch,
    roll, or None without ``learn_rotation``."""

    scale: torch.Tensor
    translation: torch.Tensor
    angle_logits: torch.Tensor | None = None

    @property
    def angles(self) -> torch.Tensor | None:
        """``(B, 3)`` yaw, pitch, roll in degrees (:func:`angles_from_logits`), or None."""
        return None if self.angle_logits is None else angles_from_logits(self.angle_logits)


class HeadPoseEstimator(nn.Module):
    """``forward(image (B, num_channels, H, W)) -> HeadPoseOutput``.

    The scale is ``exp(linear)``: positive, and 1 where the head's output is 0.
    """

    def __init__(self, config: HeadPoseConfig):
        super().__init__()
        self.config = config
        self.encoder = BottleneckEncoder(config.num_channels, config.stem_features, config.widths, config.blocks)
        features = self.encoder.out_features
        self.fc_scale = nn.Linear(features, 1)
        self.fc_translation = nn.Linear(features, 2)
        self.fc_angles = nn.Linear(features, 3 * config.angle_bins) if config.learn_rotation else None
        for head in (self.fc_scale, self.fc_translation):
            with torch.no_grad():
                head.weight.mul_(HEAD_INIT_GAIN)
            nn.init.zeros_(head.bias)

    def forward(self, image: torch.Tensor) -> HeadPoseOutput:
        out = F.adaptive_avg_pool2d(self.encoder(image), 1).flatten(1)
        scale = torch.exp(self.fc_scale(out)).squeeze(1)
        translation = self.fc_translation(out)
        logits = None
        if self.fc_angles is not None:
            logits = self.fc_angles(out).view(-1, 3, self.config.angle_bins)
        return HeadPoseOutput(scale, translation, logits)
