"""3-D keypoints of the face-vid2vid / MMFA family: projection and the pose of a warped frame.

MMFA (paper 003, Eq. 5) writes the keypoints of an image as
``p = R f (p_C + delta) + t``: canonical keypoints ``p_C`` ``(B, K, 3)`` of the identity,
an expression deformation ``delta``, a rotation ``R`` (yaw, pitch, roll of
:mod:`reanimate.geometry.rotation`), a scale ``f`` and a **2-D** translation ``t``
(z = 0), under a scaled orthographic camera (Assumption 2): the image position of a
keypoint is its x, y (:func:`orthographic_projection`); the scale ``f`` stands for the
distance to the camera. :class:`reanimate.motion.HeadMotion` holds these fields and
:meth:`~reanimate.motion.HeadMotion.points` computes Eq. 5;
:func:`reanimate.motion.relative_head_motion` is the relative form used to animate another
identity. Coordinates are in [-1, 1] of the image (x right, y down), z in the same unit,
growing away from the camera.
"""

from __future__ import annotations

import torch


def orthographic_projection(points: torch.Tensor) -> torch.Tensor:
    """Scaled orthographic projection of posed keypoints (MMFA Assumption 2).

    The scale is already in the points (Eq. 5's ``f``), so the image position is x, y.

    Args:
        points: ``(B, K, 3)``.

    Returns:
        ``(B, K, 2)`` in the same [-1, 1] image coordinates.
    """
    assert points.shape[-1] == 3, f"expected (..., 3) points, got {tuple(points.shape)}"
    return points[..., :2]


def in_plane_angle(linear: torch.Tensor) -> torch.Tensor:
    """The rotation angle of 2x2 linear maps (of their closest rotation), in degrees,
    positive clockwise in the image (``+x`` towards ``+y``, the sign of roll).

    Args:
        linear: ``(B, 2, 2)``, e.g. ``ThinPlateSpline.affine[:, :, :2]``.

    Returns:
        ``(B,)``.
    """
    return torch.rad2deg(torch.atan2(linear[:, 1, 0] - linear[:, 0, 1], linear[:, 0, 0] + linear[:, 1, 1]))


def warped_rotation(angles: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
    """Yaw, pitch, roll of a head in the frame ``Y(p) = X(A p + ...)`` given its angles in
    ``X``: the content of ``Y`` is ``X``'s turned by ``A^-1`` in the image plane, which
    only changes the roll (see :mod:`reanimate.geometry.rotation`: turning an image in
    its plane adds to the roll alone).

    Used for the equivariance loss (MMFA Eq. 15) when the rotation comes from
    pseudo-labels of the untransformed frame.

    Args:
        angles: ``(B, 3)`` yaw, pitch, roll in degrees of the head in ``X``.
        linear: ``(B, 2, 2)`` the linear part of the warp.

    Returns:
        ``(B, 3)``.
    """
    roll = angles[:, 2] - in_plane_angle(linear).to(angles)
    roll = torch.remainder(roll + 180.0, 360.0) - 180.0
    return torch.stack([angles[:, 0], angles[:, 1], roll], dim=-1)


__all__ = ["in_plane_angle", "orthographic_projection", "warped_rotation"]
