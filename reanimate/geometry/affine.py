"""Local affine motion around keypoints (first-order motion approximation).

FOMM supplementary Eq. (6): near keypoint ``p_k`` the backward motion from a driving
frame D to a source frame S is

    T_{S<-D}(z) ~= T_{S<-R}(p_k) + J_k (z - T_{D<-R}(p_k)),
    J_k = (d/dp T_{S<-R})(p_k) (d/dp T_{D<-R})(p_k)^{-1},

which is Eq. (1) of the Motion Transformer paper with ``A = J_k`` and the translation
given by the two keypoints.
"""

from __future__ import annotations

import torch


def compose_jacobians(jacobian_source: torch.Tensor, jacobian_driving: torch.Tensor) -> torch.Tensor:
    """``J_k = J_S J_D^{-1}`` (FOMM supp. Eq. 5).

    Args:
        jacobian_source, jacobian_driving: ``(..., D, D)``.

    Returns:
        ``(..., D, D)``.
    """
    return torch.matmul(jacobian_source, torch.inverse(jacobian_driving))


def local_affine_motion(
    grid: torch.Tensor,
    kp_source: torch.Tensor,
    kp_driving: torch.Tensor,
    jacobian: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply the K local affine motions to every grid point.

    Args:
        grid: ``(*spatial, D)`` coordinates of the driving frame (see :func:`coordinate_grid`).
        kp_source, kp_driving: ``(B, K, D)``.
        jacobian: ``(B, K, D, D)`` composed Jacobians ``J_S J_D^{-1}``, or None for
            the zeroth-order (translation only) model.

    Returns:
        ``(B, K, *spatial, D)``: for each keypoint, where each driving-frame point
        comes from in the source frame.
    """
    b, k, d = kp_driving.shape
    ones = [1] * (grid.dim() - 1)
    offset = grid.unsqueeze(0).unsqueeze(0) - kp_driving.view(b, k, *ones, d)
    if jacobian is not None:
        offset = torch.einsum("bkij,bk...j->bk...i", jacobian, offset)
    return offset + kp_source.view(b, k, *ones, d)


def affine_grid_points(points: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply affine maps ``[A | t]`` to points.

    Args:
        points: ``(B, N, D)``.
        matrix: ``(B, D, D + 1)``.

    Returns:
        ``(B, N, D)``: ``A p + t``.
    """
    d = points.shape[-1]
    return torch.einsum("bij,bnj->bni", matrix[:, :, :d], points) + matrix[:, None, :, d]
