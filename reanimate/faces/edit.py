"""Scripted edits of face landmarks: open the jaw, close the eyes, turn the head.

They make driving motion without a driving video (the bundled example's driving clip
is a still portrait animated with these) and controlled test cases for the animator.
All take and return ``(478, 3)`` landmarks in pixels (see :class:`reanimate.faces.Face`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..geometry import euler_to_rotation
from . import topology


def _face_height(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[topology.CHIN, :2] - landmarks[topology.FOREHEAD, :2]))


def open_mouth(landmarks: np.ndarray, amount: float) -> np.ndarray:
    """Drop the jaw by ``amount`` face heights (0.1 is a wide-open mouth).

    Everything below the inner-lip line moves down rigidly with the jaw (the lower lip,
    chin and jaw line), fading out towards the ears; the upper lip stays.
    """
    out = np.asarray(landmarks, np.float64).copy()
    lower, upper = topology._chains(topology.LIPS_INNER, *topology.MOUTH_INNER_CORNERS)
    # The line between the lips; points under it belong to the jaw.
    middle = (out[lower, :2] + out[upper, :2]) / 2
    order = np.argsort(middle[:, 0])
    line_y = np.interp(out[:, 0], middle[order, 0], middle[order, 1])
    width = np.linalg.norm(out[234, :2] - out[454, :2])  # cheek to cheek
    centre_x = out[topology.CHIN, 0]
    below = out[:, 1] > line_y + 1e-3 * width
    below[lower[1:-1]] = True
    below[upper] = False
    # The jaw turns about the ears: full drop at the chin, none at the face's sides.
    side = np.clip(1.0 - np.abs(out[:, 0] - centre_x) / (0.5 * width), 0.0, 1.0)
    weight = np.where(below, np.sqrt(side), 0.0)
    out[:, 1] += amount * _face_height(out) * weight
    return out


def close_eyes(landmarks: np.ndarray, amount: float = 1.0) -> np.ndarray:
    """Move the upper lids ``amount`` of the way onto the lower lids (1 = closed)."""
    out = np.asarray(landmarks, np.float64).copy()
    for pairs in (topology.RIGHT_EYE_LID_PAIRS, topology.LEFT_EYE_LID_PAIRS):
        up, low = np.array(pairs).T
        out[up, :2] += amount * (out[low, :2] - out[up, :2])
    return out


def turn_head(landmarks: np.ndarray, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Rotate the landmarks in 3-D about the face's centre by yaw, pitch and roll
    (degrees, signed as :class:`reanimate.faces.HeadPose`)."""
    out = np.asarray(landmarks, np.float64)
    centre = out[: topology.NUM_MESH_POINTS].mean(0)
    angles = (torch.tensor([a], dtype=torch.float64) for a in (yaw, pitch, roll))
    rotation = euler_to_rotation(*angles)[0].numpy()
    return (out - centre) @ rotation.T + centre
