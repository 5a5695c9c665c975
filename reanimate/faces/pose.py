"""Head pose (yaw, pitch, roll) from MediaPipe's 3-D face landmarks.

No canonical face model ships with the project, so the head's axes are built from the
landmarks' own symmetry (all in the camera frame of :mod:`reanimate.geometry.rotation`:
x right, y down, z away from the camera, in pixels):

* the left-right axis is the mean of the vectors from each point on the person's right
  to its mirror point on their left (:data:`~reanimate.faces.topology.SYMMETRIC_PAIRS`);
  for a frontal face it points to the image's right;
* the down axis runs along the rigid part of the midline, from the upper forehead to the
  base of the nose (:data:`~reanimate.faces.topology.FOREHEAD_TOP`,
  :data:`~reanimate.faces.topology.NOSE_BASE`; the chin is not used since it drops when
  the mouth opens), made orthogonal to the left-right axis;
* the third axis is their cross product, pointing to the back of the head.

These columns form the rotation, decomposed by :func:`reanimate.geometry.rotation_to_euler`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reanimate.faces.topology import FOREHEAD_TOP, NOSE_BASE, SYMMETRIC_PAIRS
from reanimate.geometry import euler_to_rotation, rotation_to_euler

#: Pitch (degrees) that the raw axes give for an upright face looking into the camera
#: (MediaPipe puts the base of the nose a little nearer the camera than the forehead),
#: subtracted so that a frontal face reads ~0. Measured on two frontal public-domain
#: photographs, each also mirrored: Grace Hopper (US Navy) 4.1 / 2.6 and Eileen Collins
#: (NASA) 1.9 / 2.9; mean 2.9. Pitch is the innermost rotation, so subtracting it is one
#: fixed rotation in the head's own frame.
NEUTRAL_PITCH = 2.9

_RIGHT = [pair[0] for pair in SYMMETRIC_PAIRS]
_LEFT = [pair[1] for pair in SYMMETRIC_PAIRS]


@dataclass(frozen=True)
class HeadPose:
    """Head orientation in degrees, signed as a viewer of the image sees it.

    * ``yaw > 0``: the person turns their face towards the image's right side;
    * ``pitch > 0``: the person looks up;
    * ``roll > 0``: the head tilts clockwise in the image.

    A frontal, upright face is ~(0, 0, 0). Mirroring the image flips the signs of yaw and
    roll; rotating the image clockwise by ``a`` degrees adds ``a`` to roll.
    """

    yaw: float
    pitch: float
    roll: float

    def rotation(self) -> np.ndarray:
        """``(3, 3)`` rotation of this pose: :func:`euler_to_rotation` of its angles, i.e. the
        head's axes (as in :func:`head_rotation`) with the neutral pitch taken out."""
        return euler_to_rotation(*(torch.tensor([a], dtype=torch.float64) for a in self.as_tuple()))[0].numpy()

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.yaw, self.pitch, self.roll)


def head_rotation(landmarks: np.ndarray) -> np.ndarray:
    """The raw head axes in camera space, before the :data:`NEUTRAL_PITCH` correction.

    Args:
        landmarks: ``(478, 3)`` or ``(B, 478, 3)`` (468 works too), x right, y down,
            z away from the camera, all in the same unit (e.g. pixels).

    Returns:
        ``(3, 3)`` or ``(B, 3, 3)`` float64 rotation; columns are the head's left-right
        (towards the person's left), down and back axes.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    assert points.ndim in (2, 3) and points.shape[-1] == 3 and points.shape[-2] >= 468, (
        f"expected (478, 3) or (B, 478, 3) landmarks, got {points.shape}"
    )
    across = (points[..., _LEFT, :] - points[..., _RIGHT, :]).mean(axis=-2)
    across /= np.linalg.norm(across, axis=-1, keepdims=True)
    down = points[..., NOSE_BASE, :].mean(axis=-2) - points[..., FOREHEAD_TOP, :].mean(axis=-2)
    down -= (down * across).sum(axis=-1, keepdims=True) * across
    down /= np.linalg.norm(down, axis=-1, keepdims=True)
    back = np.cross(across, down)
    return np.stack([across, down, back], axis=-1)


def head_pose(landmarks: np.ndarray) -> HeadPose | list[HeadPose]:
    """Yaw, pitch and roll (degrees) of a face from its 3-D landmarks; see :class:`HeadPose`.

    Args:
        landmarks: ``(478, 3)`` for one face, or ``(B, 478, 3)``; pixels, x right, y down,
            z away from the camera in the x unit (as :class:`reanimate.faces.Face` has them).

    Returns:
        A :class:`HeadPose`, or a list of ``B`` of them for a batch.
    """
    rotation = torch.from_numpy(head_rotation(landmarks))
    angles = rotation_to_euler(rotation.reshape(-1, 3, 3)).numpy()
    angles[:, 1] -= NEUTRAL_PITCH
    poses = [HeadPose(float(yaw), float(pitch), float(roll)) for yaw, pitch, roll in angles]
    return poses[0] if rotation.dim() == 2 else poses
