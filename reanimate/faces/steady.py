"""Steadier landmarks for consecutive video frames: each frame read twice, by a fresh
detection and by MediaPipe's tracking mode, and the two reads averaged.

The two reads' errors differ: the detector's box jitters from frame to frame, while
tracking places its region from the previous frame's landmarks (smooth, but it wanders
by up to ~1 px on a still picture, and relative motion turns that into movement). Their
mean follows a head's small turns better than either: on d10 (a talking head that barely
turns) driving its own first frame, the animation's head yaw r rose from 0.69 to 0.84 and
roll r from 0.78 to 0.95 (``benchmarks/face_quality.py``, measured by tracking), with the
same-identity L1 no worse. A frame identical to the one before gets that frame's faces
again, so a still driver stays still.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .mesh import Face, FaceMesh

#: how far (a fraction of the face's larger side, mean over the landmarks) the tracked
#: face may lie from the detected one and still be taken for the same face
SAME_FACE = 0.1


class SteadyFaceMesh:
    """A :class:`~reanimate.faces.mesh.FaceMesh` for consecutive frames of one video (a
    context manager, with :meth:`detect` and :meth:`close` as FaceMesh's): the faces of a
    fresh detection, largest first, the first one's landmarks averaged with MediaPipe's
    tracking-mode read of the same face (see the module)."""

    def __init__(self):
        self.detection = FaceMesh(video=False)
        try:
            self.tracking = FaceMesh(video=True, max_faces=1)
        except BaseException:
            self.detection.close()
            raise
        self._previous: tuple[np.ndarray, list[Face]] | None = None

    def detect(self, frame: np.ndarray) -> list[Face]:
        """The faces of ``frame`` ``(h, w, 3)`` uint8 RGB, the next frame of the video."""
        if self._previous is not None and np.array_equal(self._previous[0], frame):
            return list(self._previous[1])
        faces = self.detection.detect(frame)
        tracked = self.tracking.detect(frame) if faces else []
        if tracked:
            first, other = faces[0].landmarks, tracked[0].landmarks
            size = float(np.ptp(first[:, :2], axis=0).max())
            if np.linalg.norm(first[:, :2] - other[:, :2], axis=1).mean() <= SAME_FACE * size:
                faces[0] = dataclasses.replace(faces[0], landmarks=0.5 * (first + other))
        self._previous = (np.array(frame, copy=True), list(faces))
        return faces

    def reset(self) -> None:
        """Start afresh, as a new SteadyFaceMesh (another video, or a new reference)."""
        self.tracking.reset()
        self._previous = None

    def close(self) -> None:
        self.detection.close()
        self.tracking.close()
        self._previous = None

    def __enter__(self) -> SteadyFaceMesh:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


__all__ = ["SAME_FACE", "SteadyFaceMesh"]
