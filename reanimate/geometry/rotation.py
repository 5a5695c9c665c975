"""3-D rotations: Euler angles (yaw, pitch, roll) and least-squares fits between point sets.

Axis convention (the camera's, matching image pixels and MediaPipe landmarks): ``x``
points right in the image, ``y`` points *down* in the image and ``z`` points away from
the camera, into the scene (a right-handed frame). A rotation ``R`` maps an object's
own axes onto camera axes (its columns are those axes): ``R = I`` is an object facing
the camera upright, its own x axis along ``+x`` (for a head: from the person's right
side to their left, which a viewer sees on the image's right), "down" along ``+y`` and
"back" along ``+z``; its front (the face) looks along ``-z``, towards the camera.

Angles are in degrees, signed for a viewer of the image:

* ``yaw``: about the vertical axis; ``yaw > 0`` turns the front towards the image's
  right (``+x``).
* ``pitch``: about the horizontal axis; ``pitch > 0`` tilts the front up in the image
  (towards ``-y``), i.e. a head looking up.
* ``roll``: in the image plane; ``roll > 0`` turns the object clockwise as seen in the
  image (``+x`` towards ``+y``).

Composition: ``R = Rz(roll) @ Ry(-yaw) @ Rx(-pitch)``, where ``Rx, Ry, Rz`` are the
right-handed elementary rotations about the camera axes. Pitch is applied first, in the
object's own frame, and roll last, in the image: rotating an image in its plane by
``a`` degrees clockwise adds exactly ``a`` to the roll and leaves yaw and pitch alone,
and a constant pitch offset is a fixed rotation in the object's frame.
"""

from __future__ import annotations

import torch

# Below this |cos(yaw)| the decomposition is gimbal-locked (yaw = +-90 degrees): pitch
# and roll are not separable, and pitch is set to 0.
_GIMBAL_EPS = 1e-6


def _elementary(angle: torch.Tensor, axis: int) -> torch.Tensor:
    """Right-handed rotation by ``angle`` radians ``(B,)`` about camera axis ``axis`` -> ``(B, 3, 3)``."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = [[one, zero, zero], [zero, cos, -sin], [zero, sin, cos]]
    elif axis == 1:
        rows = [[cos, zero, sin], [zero, one, zero], [-sin, zero, cos]]
    else:
        rows = [[cos, -sin, zero], [sin, cos, zero], [zero, zero, one]]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def euler_to_rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from yaw, pitch and roll in degrees (see the module docstring).

    Args:
        yaw, pitch, roll: ``(B,)`` (or scalars, broadcast together), degrees.

    Returns:
        ``(B, 3, 3)``, ``Rz(roll) @ Ry(-yaw) @ Rx(-pitch)``; float32 unless the inputs
        are another floating type.
    """
    yaw, pitch, roll = (torch.as_tensor(a) for a in (yaw, pitch, roll))
    dtype = torch.promote_types(torch.promote_types(yaw.dtype, pitch.dtype), roll.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    yaw, pitch, roll = torch.broadcast_tensors(*(torch.deg2rad(a.to(dtype)) for a in (yaw, pitch, roll)))
    yaw, pitch, roll = (a.reshape(-1) for a in (yaw, pitch, roll))
    return _elementary(roll, 2) @ _elementary(-yaw, 1) @ _elementary(-pitch, 0)


def rotation_to_euler(rotation: torch.Tensor) -> torch.Tensor:
    """Yaw, pitch and roll in degrees of rotation matrices (inverse of :func:`euler_to_rotation`).

    Yaw is in ``[-90, 90]``, pitch and roll in ``(-180, 180]``. At yaw = +-90 degrees
    (gimbal lock) pitch is reported as 0 and the whole remaining rotation as roll.

    Args:
        rotation: ``(B, 3, 3)`` (or ``(3, 3)``) proper rotation matrices.

    Returns:
        ``(B, 3)`` (or ``(3,)``): ``[..., 0]`` yaw, ``[..., 1]`` pitch, ``[..., 2]`` roll.
    """
    assert rotation.shape[-2:] == (3, 3), f"expected (..., 3, 3) rotations, got {tuple(rotation.shape)}"
    r = rotation
    # With R = Rz(c) Ry(b) Rx(a): R[2,0] = -sin b, R[2,1] = cos b sin a, R[2,2] = cos b cos a,
    # R[1,0] = sin c cos b, R[0,0] = cos c cos b; here b = -yaw and a = -pitch.
    yaw = torch.asin(r[..., 2, 0].clamp(-1.0, 1.0))
    cos_b = torch.sqrt(r[..., 2, 1] ** 2 + r[..., 2, 2] ** 2)
    locked = cos_b < _GIMBAL_EPS
    pitch = torch.where(locked, torch.zeros_like(yaw), -torch.atan2(r[..., 2, 1], r[..., 2, 2]))
    # Locked (a = 0): R[:, 1] = Rz(c) (0, 1, 0) = (-sin c, cos c, 0).
    roll = torch.where(locked, torch.atan2(-r[..., 0, 1], r[..., 1, 1]), torch.atan2(r[..., 1, 0], r[..., 0, 0]))
    return torch.rad2deg(torch.stack([yaw, pitch, roll], dim=-1))


def _centred(points: torch.Tensor, weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points minus their (weighted) mean; returns ``(centred, mean (B, 1, D), weights (B, N, 1))``."""
    if weights is None:
        weights = torch.ones(points.shape[:-1], dtype=points.dtype, device=points.device)
    weights = (weights / weights.sum(dim=-1, keepdim=True)).unsqueeze(-1)
    mean = (points * weights).sum(dim=-2, keepdim=True)
    return points - mean, mean, weights


def _orthogonal_procrustes(
    centred_a: torch.Tensor, centred_b: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kabsch: the proper rotation ``R`` minimising ``sum w ||R a - b||^2`` of centred sets.

    Returns ``(R (B, D, D), trace(S D))``, the latter needed for Umeyama's scale.
    """
    covariance = (centred_b * weights).transpose(-1, -2) @ centred_a  # sum_i w_i b_i a_i^T
    u, s, vh = torch.linalg.svd(covariance)
    # Flip the weakest axis when U V^T is a reflection (Umeyama 1991, Eq. 39-40).
    sign = torch.sign(torch.det(u @ vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    d = torch.ones_like(s)
    d[..., -1] = sign
    rotation = u @ torch.diag_embed(d) @ vh
    return rotation, (s * d).sum(dim=-1)


def _check_point_sets(points_a: torch.Tensor, points_b: torch.Tensor) -> None:
    assert points_a.shape == points_b.shape and points_a.dim() == 3, (
        f"expected two (B, N, D) point sets of the same shape, got {tuple(points_a.shape)} and {tuple(points_b.shape)}"
    )


def fit_rotation(points_a: torch.Tensor, points_b: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Least-squares rotation between corresponding point sets (Kabsch algorithm).

    Both sets are centred on their (weighted) means, then ``R`` minimises
    ``sum_i w_i ||R (a_i - mean_a) - (b_i - mean_b)||^2`` over proper rotations
    (``det R = +1``; a reflection is never returned).

    Args:
        points_a, points_b: ``(B, N, D)``, D = 2 or 3, rows correspond.
        weights: optional ``(B, N)`` non-negative weights.

    Returns:
        ``(B, D, D)`` with ``b - mean_b ~= R (a - mean_a)``.
    """
    _check_point_sets(points_a, points_b)
    centred_a, _, w = _centred(points_a, weights)
    centred_b, _, _ = _centred(points_b, weights)
    rotation, _ = _orthogonal_procrustes(centred_a, centred_b, w)
    return rotation


def fit_similarity(
    points_a: torch.Tensor, points_b: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity transform ``b ~= scale * R a + t`` (Umeyama 1991).

    Args:
        points_a, points_b: ``(B, N, D)``, rows correspond.
        weights: optional ``(B, N)`` non-negative weights.

    Returns:
        ``(scale (B,), R (B, D, D), t (B, D))``, with ``R`` a proper rotation.
    """
    _check_point_sets(points_a, points_b)
    centred_a, mean_a, w = _centred(points_a, weights)
    centred_b, mean_b, _ = _centred(points_b, weights)
    rotation, trace = _orthogonal_procrustes(centred_a, centred_b, w)
    variance_a = (w * centred_a**2).sum(dim=(-2, -1))
    scale = trace / variance_a.clamp(min=torch.finfo(points_a.dtype).tiny)
    translation = mean_b.squeeze(-2) - scale.unsqueeze(-1) * (rotation @ mean_a.transpose(-1, -2)).squeeze(-1)
    return scale, rotation, translation


def rotation_angle(rotation_a: torch.Tensor, rotation_b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees of the rotation taking ``rotation_a`` to ``rotation_b``: ``(B, 3, 3)`` x2 -> ``(B,)``."""
    relative = rotation_b @ rotation_a.transpose(-1, -2)
    cos = (relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    # sin from the skew part: atan2 stays accurate for small angles, where acos does not.
    skew = relative - relative.transpose(-1, -2)
    sin = torch.stack([skew[..., 2, 1], skew[..., 0, 2], skew[..., 1, 0]], dim=-1).norm(dim=-1) / 2
    return torch.rad2deg(torch.atan2(sin, cos))


# Below this squared angle (radians^2), Rodrigues' coefficients come from their Taylor series.
_SMALL_ANGLE2 = 1e-8


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: ``(..., 3)`` axis-angle (radians) -> ``(..., 3, 3)`` rotations.

    Smooth at the zero rotation (series expansion there), so gradients are finite at rest.
    """
    assert axis_angle.shape[-1] == 3, f"expected (..., 3) axis-angle, got {tuple(axis_angle.shape)}"
    squared = (axis_angle * axis_angle).sum(-1)
    small = squared < _SMALL_ANGLE2
    safe = torch.where(small, torch.ones_like(squared), squared)
    angle = safe.sqrt()
    # R = I + a K + b K^2 with K the cross-product matrix of the (unnormalised) vector.
    a = torch.where(small, 1 - squared / 6, torch.sin(angle) / angle)
    b = torch.where(small, 0.5 - squared / 24, 2 * torch.sin(angle / 2) ** 2 / safe)
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).unflatten(-1, (3, 3))
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a[..., None, None] * cross + b[..., None, None] * (cross @ cross)


def matrix_to_axis_angle(rotation: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` rotations -> ``(..., 3)`` axis-angle with angle in ``[0, pi]``.

    Goes through the unit quaternion (taken from the largest of its four components), which
    is accurate near 0 and near pi alike.
    """
    assert rotation.shape[-2:] == (3, 3), f"expected (..., 3, 3) rotations, got {tuple(rotation.shape)}"
    m = rotation
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4 q_i^2 for i = w, x, y, z
    four = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    wx, wy, wz = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    xy, xz, yz = m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1]
    # Row i is 4 q_i q, from which q follows by dividing by 2 sqrt(4 q_i^2).
    rows = torch.stack(
        [
            torch.stack([four[..., 0], wx, wy, wz], -1),
            torch.stack([wx, four[..., 1], xy, xz], -1),
            torch.stack([wy, xy, four[..., 2], yz], -1),
            torch.stack([wz, xz, yz, four[..., 3]], -1),
        ],
        -2,
    )
    best = four.argmax(-1)
    chosen = torch.gather(rows, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    scale = torch.gather(four, -1, best[..., None]).clamp_min(1e-12).sqrt() * 2
    quaternion = chosen / scale
    quaternion = torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)
    w, vector = quaternion[..., 0], quaternion[..., 1:]
    norm = vector.norm(dim=-1)
    angle = 2 * torch.atan2(norm, w)
    # angle / norm -> 2 / w as the angle goes to 0
    factor = torch.where(norm < 1e-7, 2 / w.clamp_min(1e-12), angle / norm.clamp_min(1e-12))
    return vector * factor[..., None]


def rotation_power(rotation: torch.Tensor, factor: float) -> torch.Tensor:
    """``R^factor`` of rotations ``(..., 3, 3)``: the same axis, the angle times ``factor``
    (e.g. 0.5: half the turn, 2: twice it). Turns near 180 degrees have no unique axis."""
    if factor == 1.0:
        return rotation
    return axis_angle_to_matrix(matrix_to_axis_angle(rotation) * factor)


__all__ = [
    "axis_angle_to_matrix",
    "euler_to_rotation",
    "fit_rotation",
    "fit_similarity",
    "matrix_to_axis_angle",
    "rotation_angle",
    "rotation_power",
    "rotation_to_euler",
]
