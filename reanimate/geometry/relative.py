"""Relative motion transfer (FOMM supplementary A.3, Eq. 13-14).

Instead of copying the driving keypoints (absolute transfer, which also copies the
driving object's shape), the *displacement* of each keypoint from the first (or best
matching) driving frame D_1 is added to the source keypoints, and the local linear
maps are composed the same way.
"""

from __future__ import annotations

import numpy as np
import torch

from .rotation import fit_similarity


def convex_hull_area(points: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Area of the convex hull of 2-D points (Andrew's monotone chain + shoelace).

    Args:
        points: ``(..., N, 2)``.

    Returns:
        ``(...)`` areas (0 for fewer than 3 non-collinear points), float64 tensor on CPU.
    """
    pts = torch.as_tensor(points).detach().to("cpu", torch.float64)
    flat = pts.reshape(-1, *pts.shape[-2:]).numpy()
    areas = [_hull_area(p) for p in flat]
    return torch.tensor(areas, dtype=torch.float64).reshape(pts.shape[:-2])


def _hull_area(points: np.ndarray) -> float:
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) < 3:
        return 0.0

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(seq):
        chain: list = []
        for p in seq:
            while len(chain) >= 2 and cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain

    hull = half(pts)[:-1] + half(reversed(pts))[:-1]
    return polygon_area(np.array(hull))


def polygon_area(points: np.ndarray) -> float:
    """Absolute area of a simple polygon given as an ordered ``(N, 2)`` loop (shoelace)."""
    x, y = points[:, 0], points[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def movement_scale(kp_source: torch.Tensor, kp_driving_initial: torch.Tensor) -> torch.Tensor:
    """``adapt_movement_scale``: sqrt of the ratio of keypoint convex-hull areas.

    The official demo scales the relative displacements by
    ``sqrt(area(hull(kp_source))) / sqrt(area(hull(kp_driving_initial)))`` so that a
    small object in the source moves proportionally less than a large driving one.

    Args:
        kp_source, kp_driving_initial: ``(B, K, 2)``.

    Returns:
        ``(B,)`` scale factors, same dtype/device as ``kp_source``.
    """
    source_area = convex_hull_area(kp_source)
    driving_area = convex_hull_area(kp_driving_initial)
    if bool((driving_area <= 0).any()):
        raise ValueError("driving keypoints are degenerate (zero hull area); cannot adapt scale")
    scale = source_area.sqrt() / driving_area.sqrt()
    return scale.to(kp_source.device, kp_source.dtype)


def relative_keypoints(
    kp_source: torch.Tensor,
    kp_driving: torch.Tensor,
    kp_driving_initial: torch.Tensor,
    scale: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """``kp_S + scale * (kp_Dt - kp_D1)`` (Eq. 13, translation part).

    Args:
        kp_source, kp_driving_initial: ``(B or 1, K, D)``.
        kp_driving: ``(B, K, D)``.
        scale: scalar or ``(B,)``.

    Returns:
        ``(B, K, D)``.
    """
    scale = torch.as_tensor(scale, dtype=kp_driving.dtype, device=kp_driving.device)
    if scale.dim() == 1:
        scale = scale.view(-1, 1, 1)
    return (kp_driving - kp_driving_initial) * scale + kp_source


def relative_jacobians(
    jacobian_source: torch.Tensor,
    jacobian_driving: torch.Tensor,
    jacobian_driving_initial: torch.Tensor,
) -> torch.Tensor:
    """``(J_Dt J_D1^{-1}) J_S`` (Eq. 14 applied to the source's local frame).

    Args: ``(B or 1, K, D, D)`` each. Returns ``(B, K, D, D)``.
    """
    return torch.matmul(torch.matmul(jacobian_driving, torch.inverse(jacobian_driving_initial)), jacobian_source)


def normalized_shape(points: torch.Tensor) -> torch.Tensor:
    """Translation- and scale-normalised keypoint configuration, for frame matching.

    Centres the points and divides by sqrt of their convex-hull area, as the reference
    demo's best-frame search does.

    Args:
        points: ``(B, N, 2)``. Returns ``(B, N, 2)``.
    """
    centred = points - points.mean(dim=-2, keepdim=True)
    area = convex_hull_area(points).to(points.device, points.dtype).clamp(min=1e-12)
    return centred / area.sqrt().view(-1, 1, 1)


def relative_pose_motion(
    source: torch.Tensor,
    driving: torch.Tensor,
    driving_initial: torch.Tensor,
    rotation_source: torch.Tensor,
    rotation_initial: torch.Tensor,
    rigid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Relative motion of 3-D points split into head pose and expression.

    The 3-D form of :func:`relative_keypoints` that the face models use (the MMFA /
    LivePortrait decomposition ``x = c + sigma R (x_canonical + delta)``): every face is
    written as a centre ``c`` and size ``sigma`` of its ``rigid`` points, an orientation
    ``R`` (columns = the head's axes in camera space) and canonical points
    ``C = R^T (x - c) / sigma``. The driver's motion from its initial frame is

    * a similarity ``(s, Q, t)`` fitted on the rigid points (:func:`fit_similarity`), so
      ``R_D = Q R_D1``, ``sigma_D = s sigma_D1``; in the head's own frame the turn is
      ``R_D1^T Q R_D1``;
    * an expression: the change of its canonical points ``C_D - C_D1`` (the residual
      the similarity does not explain, in the head's own frame and size).

    The target keeps the source's shape and orientation and receives both, relatively,
    the turn applied in the source's head frame (a driver nodding about its own left-right
    axis makes a three-quarter-view source nod about *its* left-right axis, not about the
    camera's)::

        C_T     = C_S + (C_D - C_D1)                       (relative_keypoints)
        R_T     = R_S (R_D1^T Q R_D1),   sigma_T = s sigma_S
        c_T     = c_S + (sigma_S / sigma_D1) (c_D - c_D1)  (adapt-scale translation)
        x_T     = c_T + sigma_T R_T C_T

    A driver that does not move gives the source; a rigid head turn turns the source's
    own 3-D shape, so it is foreshortened by its own depth rather than by the driver's.

    Args:
        source: ``(1 or B, N, 3)`` points (any isotropic unit, e.g. pixels; z depth).
        driving: ``(B, N, 3)``.
        driving_initial: ``(1 or B, N, 3)``.
        rotation_source, rotation_initial: ``(1 or B, 3, 3)`` head orientations.
        rigid: optional ``(R,)`` indices of the points that move with the skull
            (default: all).

    Returns:
        ``(B, N, 3)`` target points in the source's units.
    """
    b = driving.shape[0]
    source, initial = source.expand(b, -1, -1), driving_initial.expand(b, -1, -1)
    rotation_source, rotation_initial = rotation_source.expand(b, 3, 3), rotation_initial.expand(b, 3, 3)
    index = slice(None) if rigid is None else torch.as_tensor(rigid, dtype=torch.long)

    def frame(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        part = points[:, index]
        centre = part.mean(dim=1, keepdim=True)
        size = (part - centre).square().sum(-1).mean(-1).sqrt().view(-1, 1, 1)
        return centre, size

    centre_s, size_s = frame(source)
    centre_i, size_i = frame(initial)
    centre_d = driving[:, index].mean(dim=1, keepdim=True)
    scale, rotation, _ = fit_similarity(initial[:, index], driving[:, index])
    scale = scale.view(-1, 1, 1)
    rotation_d = rotation @ rotation_initial

    def canonical(points, centre, size, orientation):
        return (points - centre) @ orientation / size  # rows: R^T (x - c) / sigma

    c_s = canonical(source, centre_s, size_s, rotation_source)
    c_d = canonical(driving, centre_d, scale * size_i, rotation_d)
    c_i = canonical(initial, centre_i, size_i, rotation_initial)
    c_t = relative_keypoints(c_s, c_d, c_i)
    centre_t = centre_s + (size_s / size_i) * (centre_d - centre_i)
    turn = rotation_initial.transpose(-1, -2) @ rotation @ rotation_initial  # in the head's frame
    return centre_t + (scale * size_s) * c_t @ (rotation_source @ turn).transpose(-1, -2)
