"""The driving frame whose face is shaped most like the source's (the official FOMM demo's
``--find_best_frame``, with MediaPipe landmarks instead of face-alignment's 68 points).

Relative motion transfer works best when it starts from a driving frame in which the face
looks like the source: same pose, same mouth and eye opening. Landmarks are compared
after removing position and scale (:func:`reanimate.geometry.normalized_shape`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from reanimate.errors import ReanimateError
from reanimate.geometry import normalized_shape


def normalized_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Image-plane landmarks centred and divided by the square root of their hull area.

    Args:
        landmarks: ``(N, 2 or 3)`` or ``(B, N, 2 or 3)`` pixels; only x and y are used.

    Returns:
        ``(N, 2)`` or ``(B, N, 2)`` float64.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    assert points.ndim in (2, 3) and points.shape[-1] in (2, 3), (
        f"expected (N, 2|3) or (B, N, 2|3) landmarks, got {points.shape}"
    )
    batch = torch.from_numpy(np.ascontiguousarray(points[..., :2])).reshape(-1, *points.shape[-2:-1], 2)
    return normalized_shape(batch).numpy().reshape(points.shape[:-1] + (2,))


def best_frame_index(source_landmarks: np.ndarray, driving_landmarks: Iterable[np.ndarray | None]) -> tuple[int, float]:
    """Index of the driving frame whose normalised landmarks are nearest the source's.

    Streaming: ``driving_landmarks`` is consumed once, one frame at a time (e.g. a
    generator running a :class:`~reanimate.faces.FaceMesh` over a video).

    Args:
        source_landmarks: ``(N, 2 or 3)``.
        driving_landmarks: one ``(N, 2 or 3)`` array per driving frame, or ``None`` for a
            frame without a face (skipped; it still counts for the index).

    Returns:
        ``(index, distance)``: the frame's index and its sum of squared differences of
        :func:`normalized_landmarks` (0 for an identical shape).

    Raises:
        ReanimateError: no driving frame has a face.
    """
    target = normalized_landmarks(source_landmarks)
    best, best_distance = -1, math.inf
    for index, landmarks in enumerate(driving_landmarks):
        if landmarks is None:
            continue
        distance = float(((normalized_landmarks(landmarks) - target) ** 2).sum())
        if distance < best_distance:
            best, best_distance = index, distance
    if best < 0:
        raise ReanimateError("no face found in any driving frame, so none can be matched to the source")
    return best, best_distance
