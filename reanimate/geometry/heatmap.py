"""Keypoints <-> heatmaps.

Keypoints are ``(..., K, D)`` tensors in [-1, 1], x first (see :mod:`.grid`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .grid import coordinate_grid


def keypoints_to_gaussian(keypoints: torch.Tensor, spatial_size: Sequence[int], variance: float) -> torch.Tensor:
    """Unnormalised Gaussian bump around each keypoint (FOMM Eq. 6 uses their differences).

    ``exp(-|z - kp|^2 / (2 * variance))`` evaluated on :func:`coordinate_grid`.

    Args:
        keypoints: ``(..., K, D)`` in [-1, 1].
        spatial_size: ``(H, W)`` (or ``(D, H, W)`` for ``D = 3``).
        variance: in normalised units (FOMM uses 0.01).

    Returns:
        ``(..., K, *spatial_size)`` with values in (0, 1], 1 at the keypoint.
    """
    dims = keypoints.shape[-1]
    assert dims == len(spatial_size), f"keypoints of dim {dims} vs grid {tuple(spatial_size)}"
    grid = coordinate_grid(spatial_size, dtype=keypoints.dtype, device=keypoints.device)
    centred = grid - keypoints.reshape(*keypoints.shape[:-1], *([1] * dims), dims)
    return torch.exp(-0.5 * (centred**2).sum(-1) / variance)


def spatial_softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Softmax over all spatial positions of each map.

    Args:
        logits: ``(B, K, *spatial)``.

    Returns:
        ``(B, K, *spatial)``, each map summing to 1.
    """
    flat = logits.flatten(2)
    return torch.softmax(flat / temperature, dim=2).view_as(logits)


def heatmap_to_keypoints(heatmap: torch.Tensor) -> torch.Tensor:
    """Expected coordinate of each (normalised) heatmap: the soft-argmax of FOMM.

    Args:
        heatmap: ``(B, K, *spatial)``, each map a probability distribution.

    Returns:
        ``(B, K, D)`` with ``D = len(spatial)``, x first, in [-1, 1].
    """
    spatial = heatmap.shape[2:]
    grid = coordinate_grid(spatial, dtype=heatmap.dtype, device=heatmap.device)
    return (heatmap.unsqueeze(-1) * grid).flatten(2, -2).sum(2)


def weighted_average(maps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Average per-pixel quantities with a heatmap as weights.

    FOMM's Jacobian head: ``J_k = sum_z H_k(z) M_k(z)``.

    Args:
        maps: ``(B, K or 1, C, *spatial)``.
        weights: ``(B, K, *spatial)``.

    Returns:
        ``(B, K, C)``.
    """
    return (weights.unsqueeze(2) * maps).flatten(3).sum(-1)
