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


def rigid_frame(points: torch.Tensor, rigid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and size of a point set, measured on its ``rigid`` points.

    Args:
        points: ``(B, N, D)``.
        rigid: optional ``(R,)`` indices of the points that move with the object
            (default: all).

    Returns:
        ``centre`` ``(B, 1, D)``, the rigid points' mean, and ``size`` ``(B, 1, 1)``, their
        root-mean-square distance from it.
    """
    part = points[:, _rigid_index(rigid)]
    centre = part.mean(dim=1, keepdim=True)
    size = (part - centre).square().sum(-1).mean(-1).sqrt().view(-1, 1, 1)
    return centre, size


def tracked_frame(
    points: torch.Tensor,
    reference: torch.Tensor,
    reference_size: torch.Tensor,
    reference_rotation: torch.Tensor,
    rigid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre, size and orientation of ``points`` followed from a ``reference`` frame of
    the same object: the similarity ``(s, Q)`` fitted on the rigid points
    (:func:`fit_similarity`) gives ``sigma = s sigma_ref`` and ``R = Q R_ref``.

    Args:
        points, reference: ``(B, N, 3)``.
        reference_size: ``(B, 1, 1)`` (:func:`rigid_frame`); reference_rotation: ``(B, 3, 3)``.
        rigid: optional ``(R,)`` indices.

    Returns:
        ``centre`` ``(B, 1, 3)`` (the rigid points' mean), ``size`` ``(B, 1, 1)``,
        ``rotation`` ``(B, 3, 3)``.
    """
    index = _rigid_index(rigid)
    scale, rotation, _ = fit_similarity(reference[:, index], points[:, index])
    centre = points[:, index].mean(dim=1, keepdim=True)
    return centre, scale.view(-1, 1, 1) * reference_size, rotation @ reference_rotation


def to_canonical(
    points: torch.Tensor, centre: torch.Tensor, size: torch.Tensor, rotation: torch.Tensor
) -> torch.Tensor:
    """Points in an object's own frame: ``C = R^T (x - c) / sigma``, row-wise.

    Args:
        points: ``(B, N, 3)``; centre: ``(B, 1, 3)``; size: ``(B, 1, 1)``; rotation:
            ``(B, 3, 3)`` (columns = the object's axes in camera space).

    Returns:
        ``(B, N, 3)``.
    """
    return (points - centre) @ rotation / size


def from_canonical(
    canonical: torch.Tensor, centre: torch.Tensor, size: torch.Tensor, rotation: torch.Tensor
) -> torch.Tensor:
    """Inverse of :func:`to_canonical`: ``x = c + sigma R C``, ``(B, N, 3)``."""
    return centre + size * canonical @ rotation.transpose(-1, -2)


def relative_similarity(
    source: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    driving: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    driving_initial: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The driver's similarity since its initial frame, applied to the source's.

    Each argument is ``(centre (B, 1, 3), size (B, 1, 1), rotation (B, 3, 3))`` (batch 1
    broadcasts). The driver's turn ``R_D1^T R_D`` is made in the source's head frame
    and its translation is scaled by the size ratio (adapt-scale)::

        R_T = R_S (R_D1^T R_D),   sigma_T = sigma_S (sigma_D / sigma_D1)
        c_T = c_S + (sigma_S / sigma_D1) (c_D - c_D1)

    Returns:
        the target's ``(centre, size, rotation)``.
    """
    centre_s, size_s, rotation_s = source
    centre_d, size_d, rotation_d = driving
    centre_i, size_i, rotation_i = driving_initial
    centre = centre_s + (size_s / size_i) * (centre_d - centre_i)
    turn = rotation_i.transpose(-1, -2) @ rotation_d  # in the head's own frame
    return centre, size_s * (size_d / size_i), rotation_s @ turn


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
    written as a centre ``c`` and size ``sigma`` of its ``rigid`` points
    (:func:`rigid_frame`), an orientation ``R`` (columns = the head's axes in camera
    space) and canonical points ``C = R^T (x - c) / sigma`` (:func:`to_canonical`). The
    driver's motion from its initial frame is

    * a similarity ``(s, Q, t)`` fitted on the rigid points (:func:`tracked_frame`), so
      ``R_D = Q R_D1``, ``sigma_D = s sigma_D1``; in the head's own frame the turn is
      ``R_D1^T R_D = R_D1^T Q R_D1``;
    * an expression: the change of its canonical points ``C_D - C_D1`` (the residual
      the similarity does not explain, in the head's own frame and size).

    The target keeps the source's shape and orientation and receives both, relatively,
    the turn applied in the source's head frame (a driver nodding about its own left-right
    axis makes a three-quarter-view source nod about *its* left-right axis, not about the
    camera's; :func:`relative_similarity`)::

        C_T     = C_S + (C_D - C_D1)                       (relative_keypoints)
        R_T     = R_S (R_D1^T R_D),   sigma_T = s sigma_S
        c_T     = c_S + (sigma_S / sigma_D1) (c_D - c_D1)  (adapt-scale translation)
        x_T     = c_T + sigma_T R_T C_T                    (from_canonical)

    A driver that does not move gives the source; a rigid head turn turns the source's
    own 3-D shape, so it is foreshortened by its own depth rather than by the driver's.
    :class:`reanimate.motion.HeadMotion` holds the same decomposition as a type.

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
    initial = driving_initial.expand(b, -1, -1)
    frame_s = (*rigid_frame(source, rigid), rotation_source)
    frame_i = (*rigid_frame(initial, rigid), rotation_initial)
    frame_d = tracked_frame(driving, initial, frame_i[1], rotation_initial.expand(b, 3, 3), rigid)
    c_t = relative_keypoints(
        to_canonical(source, *frame_s), to_canonical(driving, *frame_d), to_canonical(initial, *frame_i)
    )
    return from_canonical(c_t, *relative_similarity(frame_s, frame_d, frame_i))


def _rigid_index(rigid: torch.Tensor | None):
    return slice(None) if rigid is None else torch.as_tensor(rigid, dtype=torch.long)
