"""Geometry of landmark meshes: local linear maps fitted from landmark neighbourhoods,
least-squares affine fits, and per-triangle affine maps (similarity fits are
:func:`reanimate.geometry.fit_similarity`).

These turn a dense landmark set (e.g. a 478-point face mesh) into first-order motion
keypoints: each landmark gets the Jacobian that best maps its neighbourhood in a
reference frame onto its neighbourhood in the current frame (FOMM Eq. 6 with the
Jacobian estimated from data instead of predicted by a network), and each triangle of
a triangulation gets the exact affine map between its two positions.
"""

from __future__ import annotations

import numpy as np
import torch


def nearest_neighbours(points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of each point's ``k`` nearest other points.

    Args:
        points: ``(K, D)``.

    Returns:
        ``(K, k)`` long indices (the point itself excluded).
    """
    assert points.dim() == 2, f"expected (K, D) points, got {tuple(points.shape)}"
    assert k < points.shape[0], f"k={k} neighbours need more than {points.shape[0]} points"
    dist = torch.cdist(points, points)
    dist.fill_diagonal_(float("inf"))
    return dist.topk(k, dim=1, largest=False).indices


def fit_local_jacobians(
    reference: torch.Tensor,
    points: torch.Tensor,
    neighbours: torch.Tensor,
    ridge: float = 1e-6,
) -> torch.Tensor:
    """Least-squares local linear maps from a reference configuration to each frame.

    For landmark ``k`` with neighbours ``N(k)``, finds ``J_k`` minimising
    ``sum_{j in N(k)} |(p_j - p_k) - J_k (r_j - r_k)|^2`` (``r`` reference, ``p``
    current), i.e. ``J_k = (Y^T X)(X^T X + ridge I)^{-1}``.

    Args:
        reference: ``(1 or B, K, D)``.
        points: ``(B, K, D)``.
        neighbours: ``(K, n)`` indices from :func:`nearest_neighbours`.

    Returns:
        ``(B, K, D, D)``.
    """
    reference = reference.expand(points.shape[0], *reference.shape[1:])
    x = reference[:, neighbours] - reference.unsqueeze(2)  # (B, K, n, D)
    y = points[:, neighbours] - points.unsqueeze(2)
    xtx = x.transpose(-1, -2) @ x
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    ytx = y.transpose(-1, -2) @ x
    return ytx @ torch.linalg.inv(xtx + ridge * eye)


def fit_affine(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares affine map ``target ~= A source + t``.

    Args:
        source, target: ``(N, D)`` with ``N >= D + 1``.

    Returns:
        ``(D, D + 1)``.
    """
    homogeneous = np.concatenate([source, np.ones((len(source), 1))], axis=1)
    solution, *_ = np.linalg.lstsq(homogeneous, target, rcond=None)
    return solution.T


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Twice the signed area of each triangle (positive = counter-clockwise in x-right,
    y-up axes; with image axes (y down) the sign is flipped, but consistently).

    Args:
        points: ``(N, 2)``; triangles: ``(T, 3)`` vertex indices.

    Returns:
        ``(T,)``.
    """
    a, b, c = (points[triangles[:, i]] for i in range(3))
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def untangle(
    points: np.ndarray,
    triangles: np.ndarray,
    reference: np.ndarray,
    movable: np.ndarray,
    min_ratio: float = 0.2,
    iterations: int = 50,
) -> tuple[np.ndarray, int]:
    """Move the movable points of a 2-D mesh a little until every triangle keeps the
    orientation of its reference and at least ``min_ratio`` of the reference's size.

    Each violated triangle is a constraint ``sign(A_ref) A(x) >= min_ratio |A_ref|`` on
    its twice-signed area ``A`` (:func:`signed_areas`), projected as in position-based
    dynamics: its movable corners move along the area's gradient by the least amount
    that meets it; a point shared by several violated triangles takes the mean of their
    moves (Jacobi), repeated until none is violated or ``iterations`` passes.

    Args:
        points: ``(N, 2)``.
        triangles: ``(T, 3)`` vertex indices.
        reference: ``(T,)`` twice-signed reference areas in the units of ``points``
            (e.g. the rest pose's, scaled to the current size).
        movable: ``(N,)`` bool, points that may move (the others are fixed).
        min_ratio: the smallest share of its reference area a triangle may keep.

    Returns:
        the moved points ``(N, 2)`` (a copy) and the number of triangles still violated
        (those with no movable corner included).
    """
    x = np.array(points, dtype=np.float64, copy=True)
    sign = np.sign(reference)
    need = min_ratio * np.abs(reference)
    free = np.asarray(movable, bool)[triangles].astype(np.float64)  # (T, 3)
    for _ in range(iterations):
        gap = need - sign * signed_areas(x, triangles)
        bad = np.nonzero((gap > 1e-9 * np.maximum(need, 1e-12)) & (free.sum(1) > 0))[0]
        if len(bad) == 0:
            break
        tri = triangles[bad]
        a, b, c = (x[tri[:, i]] for i in range(3))
        # Gradients of the twice-signed area w.r.t. each corner (image or math axes alike).
        grads = (
            np.stack(
                [
                    np.stack([b[:, 1] - c[:, 1], c[:, 0] - b[:, 0]], -1),
                    np.stack([c[:, 1] - a[:, 1], a[:, 0] - c[:, 0]], -1),
                    np.stack([a[:, 1] - b[:, 1], b[:, 0] - a[:, 0]], -1),
                ],
                1,
            )
            * (sign[bad, None] * free[bad])[:, :, None]
        )  # (M, 3, 2)
        norm = (grads**2).sum((1, 2))
        # A triangle collapsed to a point has no gradient and stays (no direction to move).
        step = np.where(norm > 1e-12, gap[bad] / np.maximum(norm, 1e-12), 0.0)
        moves = grads * step[:, None, None]
        sums = np.zeros_like(x)
        counts = np.zeros(len(x))
        np.add.at(sums, tri.reshape(-1), moves.reshape(-1, 2))
        np.add.at(counts, tri.reshape(-1), np.abs(moves).sum(-1).reshape(-1) > 0)
        x += sums / np.maximum(counts, 1)[:, None]
    gap = need - sign * signed_areas(x, triangles)
    return x, int((gap > 1e-9 * np.maximum(need, 1e-12)).sum())


def triangle_backward_maps(source: np.ndarray, target: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Affine map of each triangle from its target position back to its source position.

    This is the first-order motion of FOMM Eq. (6) with the triangle as the local
    frame: ``T(z) = c_S + J_S J_T^{-1} (z - c_T)`` where ``J`` holds the triangle's
    two edge vectors and ``c`` its first vertex; inside the triangle it is exact.

    Args:
        source, target: ``(N, 2)`` vertex positions; triangles: ``(T, 3)``.

    Returns:
        ``(T, 2, 3)`` matrices ``M`` with ``source_point = M @ [x, y, 1]``. Degenerate
        target triangles get the map of the nearest non-degenerate shape (a tiny
        regularisation of the edge matrix), never NaN.
    """
    s0, t0 = source[triangles[:, 0]], target[triangles[:, 0]]
    j_s = np.stack([source[triangles[:, 1]] - s0, source[triangles[:, 2]] - s0], axis=-1)  # (T, 2, 2)
    j_t = np.stack([target[triangles[:, 1]] - t0, target[triangles[:, 2]] - t0], axis=-1)
    det = j_t[:, 0, 0] * j_t[:, 1, 1] - j_t[:, 0, 1] * j_t[:, 1, 0]
    tiny = np.abs(det) < 1e-6
    if tiny.any():
        j_t = j_t.copy()
        j_t[tiny] += np.eye(2) * 1e-3
        det = j_t[:, 0, 0] * j_t[:, 1, 1] - j_t[:, 0, 1] * j_t[:, 1, 0]
    inv = np.empty_like(j_t)
    inv[:, 0, 0], inv[:, 1, 1] = j_t[:, 1, 1] / det, j_t[:, 0, 0] / det
    inv[:, 0, 1], inv[:, 1, 0] = -j_t[:, 0, 1] / det, -j_t[:, 1, 0] / det
    linear = j_s @ inv
    translation = s0 - np.einsum("tij,tj->ti", linear, t0)
    return np.concatenate([linear, translation[:, :, None]], axis=2)
