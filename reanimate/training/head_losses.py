"""Losses of the 3-D keypoint face model (MMFA, paper 003, Eq. 6-9, 14-15, and the
priors it takes from face-vid2vid, Wang et al. 2021).

Plain functions; :mod:`reanimate.training.mmfa_objective` weights and sums them. The
image losses (multi-scale perceptual, GAN, feature matching) are FOMM's
(:mod:`reanimate.training.losses`).

- :func:`keypoint_prior_loss` ``L_L``: keypoints at least ``sqrt(D_t)`` apart, their
  mean depth at ``z_t`` (face-vid2vid: ``D_t = 0.1`` on squared distances, ``z_t = 0.33``).
- :func:`deformation_prior_loss` ``L_Delta``: the mean ``|delta|`` (MMFA supp. A.2).
- :func:`projected_equivariance_loss` ``L_E`` (Eq. 15) on the keypoints' 2-D projections.
- :func:`canonical_consistency_loss` ``L_C`` (Eq. 8).
- :func:`expression_similarity_loss` ``L_Exp`` (Eq. 7): ``1 - cos(f, f')``.
- :func:`landmark_loss` ``L_M`` (Eq. 9): per group of face landmarks.
- :func:`head_pose_bins_loss`: a Hopenet-style binned yaw/pitch/roll head trained against
  pseudo-labels (cross-entropy on the bins + the expectation's error).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from ..geometry.keypoints3d import orthographic_projection
from ..geometry.tps import ThinPlateSpline
from .losses import full_precision

#: face-vid2vid's keypoint prior: minimum squared pairwise distance and target mean depth
KEYPOINT_DISTANCE_THRESHOLD = 0.1
KEYPOINT_MEAN_DEPTH = 0.33


def keypoint_prior_loss(
    keypoints: torch.Tensor,
    distance_threshold: float = KEYPOINT_DISTANCE_THRESHOLD,
    mean_depth: float = KEYPOINT_MEAN_DEPTH,
) -> torch.Tensor:
    """``L_L = sum_{i != j} max(0, D_t - |p_i - p_j|^2) + |mean_k z_k - z_t|``, averaged over
    the batch (face-vid2vid's keypoint prior, used unchanged by MMFA).

    Args:
        keypoints: ``(B, K, 3)`` posed keypoints ``p_D``.
    """
    squared = torch.cdist(keypoints, keypoints).pow(2)  # (B, K, K)
    k = keypoints.shape[1]
    off_diagonal = ~torch.eye(k, dtype=torch.bool, device=keypoints.device)
    spread = F.relu(distance_threshold - squared)[:, off_diagonal].sum(-1)
    depth = (keypoints[..., 2].mean(-1) - mean_depth).abs()
    return (spread + depth).mean()


def deformation_prior_loss(delta: torch.Tensor) -> torch.Tensor:
    """``L_Delta``: the mean ``|delta|`` over batch, keypoints and coordinates."""
    return delta.abs().mean()


@full_precision
def projected_equivariance_loss(
    keypoints: torch.Tensor, keypoints_transformed: torch.Tensor, tps: ThinPlateSpline
) -> torch.Tensor:
    """Eq. 15 on 2-D projections: ``mean |proj(p_X) - T(proj(p_{T(X)}))|``.

    ``keypoints_transformed`` are found in ``Y = transform_frame(X, T)``
    (``Y(p) = X(T(p))``), so a point of ``Y`` at ``q`` is at ``T(q)`` in ``X``.

    Args:
        keypoints, keypoints_transformed: ``(B, K, 3)``.
    """
    x = orthographic_projection(keypoints)
    y = orthographic_projection(keypoints_transformed)
    return (x - tps.warp_points(y)).abs().mean()


def canonical_consistency_loss(canonical_source: torch.Tensor, canonical_driving: torch.Tensor) -> torch.Tensor:
    """Eq. 8: the mean over keypoints (and batch) of ``|p_C,S - p_C,D|_2``.

    Args:
        canonical_source, canonical_driving: ``(B, K, 3)``.
    """
    return (canonical_source - canonical_driving).norm(dim=-1).mean()


def expression_similarity_loss(feature: torch.Tensor, feature_augmented: torch.Tensor) -> torch.Tensor:
    """Eq. 7: ``1 - <f, f'>`` with the cosine similarity, averaged over the batch.

    Args:
        feature, feature_augmented: ``(B, F)`` expression features of an image and of its
            rotated / scaled / translated copy.
    """
    return (1 - F.cosine_similarity(feature, feature_augmented, dim=-1)).mean()


def landmark_loss(
    generated: torch.Tensor,
    driving: torch.Tensor,
    groups: Mapping[str, Sequence[int]],
    weights: Mapping[str, float],
    image_size: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Eq. 9: per landmark group, the weighted mean Euclidean distance between the landmarks
    of the generated and of the driving image (2-D, x and y).

    Args:
        generated, driving: ``(B, N, 2+)`` landmarks in pixels (only x, y are used).
        groups: name -> landmark indices (e.g. ``face``, ``mouth``, ``pupil``).
        weights: name -> ``lambda``; groups with weight 0 or absent are skipped.
        image_size: distances are divided by it (pixels -> image widths).

    Returns:
        ``{name: weighted loss}``.
    """
    out = {}
    for name, index in groups.items():
        weight = weights.get(name, 0.0)
        if weight == 0:
            continue
        index = torch.as_tensor(index, device=generated.device)
        distance = (generated[:, index, :2] - driving[:, index, :2]).norm(dim=-1).mean()
        out[name] = weight * distance / image_size
    return out


def head_pose_bins_loss(
    logits: torch.Tensor, target: torch.Tensor, bin_centres: torch.Tensor, regression_weight: float = 1.0
) -> torch.Tensor:
    """Hopenet's loss (Ruiz et al. 2018) for a binned yaw / pitch / roll head: cross-entropy
    against the bin of each target angle plus ``regression_weight`` times the mean
    absolute error (degrees) of the softmax expectation.

    Args:
        logits: ``(B, 3, bins)``; target: ``(B, 3)`` degrees; bin_centres: ``(bins,)`` degrees
            (evenly spaced).

    Returns:
        a scalar.
    """
    width = bin_centres[1] - bin_centres[0]
    lower = bin_centres[0] - width / 2
    index = ((target - lower) / width).floor().long().clamp(0, bin_centres.numel() - 1)
    classification = F.cross_entropy(logits.flatten(0, 1), index.flatten())
    expectation = (logits.softmax(-1) * bin_centres).sum(-1)
    return classification + regression_weight * (expectation - target).abs().mean()


__all__ = [
    "KEYPOINT_DISTANCE_THRESHOLD",
    "KEYPOINT_MEAN_DEPTH",
    "canonical_consistency_loss",
    "deformation_prior_loss",
    "expression_similarity_loss",
    "head_pose_bins_loss",
    "keypoint_prior_loss",
    "landmark_loss",
    "projected_equivariance_loss",
]
