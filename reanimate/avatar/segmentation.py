"""Foreground masks for head avatars with MediaPipe's selfie segmentation.

IMavatar trains on foreground masks (its pre-processing uses MODNet's portrait matting,
supplement Sec. 2.6). MediaPipe is already the project's optional face dependency, and
its wheel ships a person/background model (``mediapipe/modules/selfie_segmentation/
selfie_segmentation.tflite``, 256x256 input), run here through MediaPipe's own solution
API as :class:`reanimate.faces.mesh.FaceMesh` runs the face mesh. The mask covers the
whole person (head, hair, neck, shoulders): what IMavatar's masks cover too.
"""

from __future__ import annotations

import contextlib

import numpy as np

from reanimate.faces.mesh import quiet_native_stderr
from reanimate.faces.optional import require_face_mesh

#: ``model_selection`` of MediaPipe's solution: 0 is the general (square, 256x256) model,
#: 1 the landscape (144x256) one. Face crops are square.
GENERAL_MODEL = 0
LANDSCAPE_MODEL = 1
#: Side of the blank image run once at start-up (see SelfieSegmenter.__init__).
_WARM_UP_SIZE = 64


def _require_selfie_segmentation():
    """``mediapipe.solutions.selfie_segmentation``, or a one-line ReanimateError naming the
    install command (the same optional import, and logging set-up, as the face mesh)."""
    require_face_mesh()
    import mediapipe as mp

    return mp.solutions.selfie_segmentation


class SelfieSegmenter:
    """Person/background segmentation of RGB frames; a context manager.

    Args:
        model: :data:`GENERAL_MODEL` (default) or :data:`LANDSCAPE_MODEL`.

    >>> with SelfieSegmenter() as segment:
    ...     mask = segment(frame)  # (H, W) float32 in [0, 1], 1 = person

    Raises:
        ReanimateError: mediapipe is not installed (one line with the install command).
    """

    def __init__(self, model: int = GENERAL_MODEL):
        if model not in (GENERAL_MODEL, LANDSCAPE_MODEL):
            raise ValueError(f"model must be {GENERAL_MODEL} or {LANDSCAPE_MODEL}, got {model}")
        solution = _require_selfie_segmentation()
        with quiet_native_stderr():
            self._segmenter = solution.SelfieSegmentation(model_selection=model)
            # The first run starts the graph's threads, which log to descriptor 2.
            self._segmenter.process(np.zeros((_WARM_UP_SIZE, _WARM_UP_SIZE, 3), dtype=np.uint8))

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Foreground probability of a ``uint8 (H, W, 3)`` RGB frame: ``(H, W)`` float32 in
        [0, 1] (MediaPipe resizes to its input and back to the frame's size)."""
        if self._segmenter is None:
            raise ValueError("SelfieSegmenter is closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected a uint8 (H, W, 3) RGB frame, got {frame.dtype} {frame.shape}")
        result = self._segmenter.process(np.ascontiguousarray(frame))
        mask = result.segmentation_mask
        if mask is None:  # no output packet: nothing segmented
            return np.zeros(frame.shape[:2], dtype=np.float32)
        mask = np.asarray(mask, dtype=np.float32).reshape(frame.shape[:2])
        return np.clip(mask, 0.0, 1.0)

    def close(self) -> None:
        """Release MediaPipe's graph. Idempotent."""
        if self._segmenter is not None:
            with contextlib.suppress(ValueError):  # already closed by MediaPipe
                self._segmenter.close()
            self._segmenter = None

    def __enter__(self) -> SelfieSegmenter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


__all__ = ["GENERAL_MODEL", "LANDSCAPE_MODEL", "SelfieSegmenter"]
