"""MediaPipe Pose: the 33 landmarks of one body per frame, for the body metrics."""

from __future__ import annotations

import numpy as np

from reanimate.faces.mesh import quiet_native_stderr
from reanimate.faces.optional import require_face_mesh

__all__ = ["BODY_KEYPOINTS", "POSE_MODEL_COMPLEXITY", "VISIBILITY_THRESHOLD", "BodyPose"]

#: MediaPipe Pose landmarks per body.
BODY_KEYPOINTS = 33
#: A body landmark is visible where MediaPipe's visibility score is above this.
VISIBILITY_THRESHOLD = 0.5
#: MediaPipe Pose model; only complexity 1 ships inside the mediapipe wheel (no download).
POSE_MODEL_COMPLEXITY = 1


class BodyPose:
    """MediaPipe Pose in video (tracking) mode: 33 landmarks of one body per frame."""

    def __init__(self):
        require_face_mesh()  # imports mediapipe with its logging turned down, or the hint
        import mediapipe as mp

        with quiet_native_stderr():
            self._pose = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=POSE_MODEL_COMPLEXITY)
            self._pose.process(np.zeros((64, 64, 3), dtype=np.uint8))  # start-up logs; no body, no state

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(33, 2)`` float32 pixels and ``(33,)`` float32 visibility scores, or None."""
        result = self._pose.process(np.ascontiguousarray(image))
        if result.pose_landmarks is None:
            return None
        height, width = image.shape[:2]
        marks = result.pose_landmarks.landmark
        points = np.array([(p.x * width, p.y * height) for p in marks], dtype=np.float32)
        return points, np.array([p.visibility for p in marks], dtype=np.float32)

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> BodyPose:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
