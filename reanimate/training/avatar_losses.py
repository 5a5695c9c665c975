"""IMavatar's training losses (Zheng et al. 2022, Sec. 3.5; weights from the authors'
``IMavatar_supervised.conf``), as plain functions on the sampled pixels of a batch.

Every term is a sum over its pixels divided by the number of sampled pixels ``N`` (not
by the number of pixels it uses), as the authors normalise, so that the terms keep their
relative weights whatever fraction of the rays hits the head.

Pixels are flat ``(N,)`` batches (all frames' samples together). ``hit``: the ray found
the surface; ``in_mask``: the pixel is foreground in the segmentation mask; ``valid``:
the correspondence search converged for the ray's point (see
:mod:`reanimate.avatar.correspondence`).

Geometry values ``s`` follow :mod:`reanimate.avatar.fields`: the surface is ``s = 0``,
``s > 0`` outside, and the soft occupancy of a ray is ``sigmoid(-alpha s)`` at the ray's
point of minimum ``s`` (IDR's mask loss, with IMavatar's ``alpha = 50``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: squared distance (model units, :mod:`reanimate.avatar.model`: 4 per metre) under which
#: a canonical surface point takes the nearest rig vertex's skinning weights, blendshapes
#: and correctives as pseudo ground truth. The authors gate on pytorch3d's
#: ``knn_points``, which returns *squared* distances, at 0.001 in their FLAME x4 units:
#: within about 0.032 units = 0.8 cm.
PSEUDO_GT_SQUARED_DISTANCE = 1e-3


@dataclass
class AvatarLossWeights:
    """The authors' supervised configuration: ``rgb`` 1, ``mask`` 100 with ``alpha`` 50,
    ``lbs`` 1, of which skinning weights count 0.1 and blendshapes and correctives 10
    each (both compared after a x10 scale, as in their code). ``lbs: 0`` is the paper's
    "Ours-" (no pseudo ground truth from the rig)."""

    rgb: float = 1.0
    mask: float = 100.0
    alpha: float = 50.0
    lbs: float = 1.0
    skinning: float = 0.1
    expression_dirs: float = 10.0
    pose_dirs: float = 10.0
    dirs_scale: float = 10.0
    rig_prior: float = 0.0  # ours, not the paper's: see reanimate.training.avatar_rig_prior

    def __post_init__(self) -> None:
        for name in ("rgb", "mask", "lbs", "skinning", "expression_dirs", "pose_dirs", "rig_prior"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss_weights.{name} must be >= 0, got {getattr(self, name)}")
        if not self.alpha > 0:
            raise ValueError(f"loss_weights.alpha must be > 0, got {self.alpha}")


def rgb_loss(rgb: torch.Tensor, target: torch.Tensor, hit: torch.Tensor, in_mask: torch.Tensor) -> torch.Tensor:
    """``sum |rgb - target|`` over pixels that hit the surface inside the mask, ``/ N``.

    rgb, target: ``(N, 3)``; hit, in_mask: ``(N,)`` bool. 0 (with a graph) when none."""
    used = hit & in_mask
    return (rgb[used] - target[used]).abs().sum() / max(rgb.shape[0], 1)


def mask_loss(
    value: torch.Tensor, hit: torch.Tensor, in_mask: torch.Tensor, valid: torch.Tensor, alpha: float
) -> torch.Tensor:
    """IDR's mask loss: for pixels that are not (hit and foreground), the binary cross
    entropy of ``sigmoid(-alpha value)`` against the mask, ``/ alpha``, summed, ``/ N``.

    value: ``(N,)`` the geometry value at the ray's minimum point; hit, in_mask, valid:
    ``(N,)`` bool (rays without a converged correspondence are left out)."""
    used = ~(hit & in_mask) & valid
    logits = -alpha * value[used]
    bce = F.binary_cross_entropy_with_logits(logits, in_mask[used].to(logits.dtype), reduction="sum")
    return bce / alpha / max(value.shape[0], 1)


def nearest_vertices(
    points: torch.Tensor, vertices: torch.Tensor, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest rig vertex of each point: ``points (N, 3)``, ``vertices (V, 3)`` ->
    ``(squared distance (N,), index (N,) long)`` (chunked over points)."""
    distances, indices = [], []
    for start in range(0, points.shape[0], chunk):
        d = torch.cdist(points[start : start + chunk], vertices).square()
        best, index = d.min(dim=1)
        distances.append(best)
        indices.append(index)
    if not distances:
        return points.new_zeros(0), torch.zeros(0, dtype=torch.long, device=points.device)
    return torch.cat(distances), torch.cat(indices)


def pseudo_gt_loss(
    prediction: torch.Tensor, target: torch.Tensor, near: torch.Tensor, num_pixels: int, scale: float = 1.0
) -> torch.Tensor:
    """``sum (scale (prediction - target))^2`` over the rows where ``near``, ``/ N``.

    prediction, target: ``(M, C)`` for the M surface points; near: ``(M,)`` bool (the
    point is within the gate of its nearest rig vertex)."""
    diff = scale * (prediction[near] - target[near])
    return diff.square().sum() / max(num_pixels, 1)


__all__ = [
    "PSEUDO_GT_SQUARED_DISTANCE",
    "AvatarLossWeights",
    "mask_loss",
    "nearest_vertices",
    "pseudo_gt_loss",
    "rgb_loss",
]
