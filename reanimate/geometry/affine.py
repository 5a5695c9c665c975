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


def inverse_2x2(matrix: torch.Tensor) -> torch.Tensor:
    """The inverse of 2x2 matrices in closed form, ``[[d, -b], [-c, a]] / (ad - bc)``.

    Equal to ``torch.linalg.inv`` up to float rounding, but made of elementwise
    operations only: ``torch.inverse`` has no ONNX operator, and this exports and runs
    in ONNX Runtime (``reanimate export``). Singular matrices give inf/nan as division
    by zero does (``torch.linalg.inv`` raises instead).

    Args:
        matrix: ``(..., 2, 2)``.

    Returns:
        ``(..., 2, 2)``.
    """
    assert matrix.shape[-2:] == (2, 2), f"expected (..., 2, 2) matrices, got {tuple(matrix.shape)}"
    a, b = matrix[..., 0, 0], matrix[..., 0, 1]
    c, d = matrix[..., 1, 0], matrix[..., 1, 1]
    det = a * d - b * c
    rows = [torch.stack([d, -b], dim=-1), torch.stack([-c, a], dim=-1)]
    return torch.stack(rows, dim=-2) / det[..., None, None]


def compose_jacobians(jacobian_source: torch.Tensor, jacobian_driving: torch.Tensor) -> torch.Tensor:
    """``J_k = J_S J_D^{-1}`` (FOMM supp. Eq. 5); 2x2 maps are inverted in closed form
    (:func:`inverse_2x2`, exportable to ONNX), larger ones by ``torch.linalg.inv``.

    Args:
        jacobian_source, jacobian_driving: ``(..., D, D)``.

    Returns:
        ``(..., D, D)``.
    """
    if jacobian_driving.shape[-2:] == (2, 2):
        return torch.matmul(jacobian_source, inverse_2x2(jacobian_driving))
    return torch.matmul(jacobian_source, torch.linalg.inv(jacobian_driving))


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
