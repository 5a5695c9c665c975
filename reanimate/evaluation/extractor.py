"""Per-frame measurements of a video for the evaluation metrics.

:class:`FeatureExtractor` reads, frame by frame, what :mod:`reanimate.evaluation.metrics`
compares:

* ``kind="face"``: MediaPipe's 478 face-mesh landmarks (tracked through the video, the
  largest face of each frame; for AKD, MKR and jitter), the head pose from them (yaw,
  pitch, roll degrees, :func:`reanimate.faces.head_pose`; for APD) and, with dlib, its
  68-point landmarks and 128-D face descriptors (for AED and CSIM);
* ``kind="body"``: MediaPipe Pose's 33 landmarks with their visibility.

The result is a :class:`~reanimate.evaluation.features.VideoFeatures` of per-frame arrays
(pixels of the frames measured, NaN where nothing was found);
:class:`~reanimate.evaluation.cache.FeatureCache` stores them.

dlib is optional (``pip install dlib-bin face_recognition_models``): without it, or
without the model files, the dlib fields are None and :attr:`FeatureExtractor.missing`
says what to install (:mod:`reanimate.evaluation.dlib_face`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np

from reanimate.errors import ReanimateError
from reanimate.evaluation.body_pose import (
    BODY_KEYPOINTS,
    POSE_MODEL_COMPLEXITY,
    VISIBILITY_THRESHOLD,
    BodyPose,
)
from reanimate.evaluation.dlib_face import (
    DLIB_MAX_SIDE,
    DLIB_UPSAMPLE,
    DlibFace,
    DlibUnavailable,
    dlib_box_from_landmarks,
)
from reanimate.evaluation.features import (
    DLIB_LANDMARKS,
    EMBEDDING_SIZE,
    KINDS,
    VideoFeatures,
)
from reanimate.faces.mesh import Face, FaceMesh
from reanimate.faces.optional import require_face_mesh
from reanimate.faces.topology import NUM_LANDMARKS

__all__ = ["EXTRACTOR_VERSION", "MAX_FACES", "FeatureExtractor", "Progress"]

#: Bump whenever the extraction code changes what it measures (invalidates caches).
EXTRACTOR_VERSION = 1
#: Faces the face mesh looks for per frame; the largest one is measured.
MAX_FACES = 2
_EMPTY_SIZE = (0, 0)

Progress = Callable[[int], object]


class _FrameRow(NamedTuple):
    """One frame's measurements (None: the field is not extracted)."""

    keypoints: np.ndarray  # (K, 2)
    visible: np.ndarray  # (K,)
    keypoints68: np.ndarray | None  # (68, 2)
    pose: np.ndarray | None  # (3,)
    identity: np.ndarray | None  # (128,)


class FeatureExtractor:
    """Measures every frame of a video for the evaluation metrics; a context manager.

    Args:
        kind: ``"face"`` (face mesh, head pose, dlib) or ``"body"`` (MediaPipe Pose).
        identity: faces: compute dlib's 128-D descriptors (AED, CSIM).
        landmarks68: faces: compute dlib's 68-point landmarks.
        identity_every: descriptors of every ``identity_every``-th frame only (frames
            ``0, k, 2k, ...``; the others get NaN rows). Descriptors are the slow part.

    Attributes:
        missing: one line per optional part that is unavailable, with what to install
            (empty when everything asked for is there). Those fields are then None.
        version: identifies what is extracted (code version, detectors and their
            versions, options): part of :class:`FeatureCache`'s key.

    >>> with FeatureExtractor("face") as extractor, open_frames("video.mp4") as reader:
    ...     features = extractor(reader)
    """

    def __init__(self, kind: str = "face", identity: bool = True, landmarks68: bool = True, identity_every: int = 1):
        if kind not in KINDS:
            raise ReanimateError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if int(identity_every) != identity_every or identity_every < 1:
            raise ReanimateError(f"identity_every must be a whole number >= 1, got {identity_every}")
        require_face_mesh()  # fail now, with the install hint, rather than at the first video
        self.kind = kind
        self.identity_every = int(identity_every)
        self.missing: list[str] = []
        self._dlib: DlibFace | None = None
        if kind == "face" and (identity or landmarks68):
            try:
                self._dlib = DlibFace()
            except DlibUnavailable as exc:
                self.missing.append(str(exc))
        self.identity = bool(identity) and self._dlib is not None
        self.landmarks68 = bool(landmarks68) and self._dlib is not None
        self.version = self._describe()
        self._closed = False

    def _describe(self) -> str:
        import mediapipe

        parts = [f"extract{EXTRACTOR_VERSION}", self.kind, f"mediapipe-{mediapipe.__version__}"]
        if self.kind == "body":
            parts.append(f"pose-c{POSE_MODEL_COMPLEXITY}-visible>{VISIBILITY_THRESHOLD}")
            return "/".join(parts)
        parts.append(f"mesh{NUM_LANDMARKS}-largest-of-{MAX_FACES}")
        if self._dlib is not None and (self.identity or self.landmarks68):
            parts.append(f"dlib-{self._dlib.version}-max{DLIB_MAX_SIDE}-up{DLIB_UPSAMPLE}")
        if self.landmarks68:
            parts.append("68")
        if self.identity:
            parts.append(f"identity-every{self.identity_every}")
        return "/".join(parts)

    def __call__(self, frames: Iterable[np.ndarray], progress: Progress | None = None) -> VideoFeatures:
        """Measure ``frames`` (uint8 ``(H, W, 3)`` RGB, all the same size, in video order),
        one at a time; ``progress(1)`` is called after each frame (e.g. a tqdm bar's
        ``update``). Returns their :class:`VideoFeatures` (``T`` = the number of frames)."""
        if self._closed:
            raise ValueError("FeatureExtractor is closed")
        if self.kind == "face":
            with FaceMesh(max_faces=MAX_FACES, video=True) as mesh:
                rows, size = _measure_frames(frames, lambda i, f: self._face_row(mesh, i, f), progress)
        else:
            with BodyPose() as body:
                rows, size = _measure_frames(frames, lambda i, f: _body_row(body, f), progress)
        return self._assemble(rows, size)

    def _face_row(self, mesh: FaceMesh, index: int, frame: np.ndarray) -> _FrameRow:
        faces = mesh.detect(frame)
        face = faces[0] if faces else None
        row = _face_mesh_row(face)._replace(keypoints68=_nan((DLIB_LANDMARKS, 2)), identity=_nan((EMBEDDING_SIZE,)))
        want_identity = self.identity and index % self.identity_every == 0
        if not (self.landmarks68 or want_identity):
            return row
        box = None if face is None else dlib_box_from_landmarks(face.landmarks)
        found = self._dlib.measure(frame, box, descriptor=want_identity)
        if found is None:
            return row
        return row._replace(
            keypoints68=found.landmarks68, identity=row.identity if found.descriptor is None else found.descriptor
        )

    def _assemble(self, rows: list[_FrameRow], size: tuple[int, int]) -> VideoFeatures:
        count = NUM_LANDMARKS if self.kind == "face" else BODY_KEYPOINTS
        face = self.kind == "face"
        return VideoFeatures(
            kind=self.kind,
            size=size,
            keypoints=_stack(rows, "keypoints", (count, 2), np.float32),
            visible=_stack(rows, "visible", (count,), bool),
            keypoints68=_stack(rows, "keypoints68", (DLIB_LANDMARKS, 2), np.float32) if self.landmarks68 else None,
            pose=_stack(rows, "pose", (3,), np.float32) if face else None,
            identity=_stack(rows, "identity", (EMBEDDING_SIZE,), np.float32) if self.identity else None,
        )

    def close(self) -> None:
        """Release dlib's models (MediaPipe's graphs live only during a call). Idempotent."""
        self._dlib = None
        self._closed = True

    def __enter__(self) -> FeatureExtractor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeatureExtractor({self.version!r})"


def _measure_frames(
    frames: Iterable[np.ndarray], measure: Callable[[int, np.ndarray], _FrameRow], progress: Progress | None
) -> tuple[list[_FrameRow], tuple[int, int]]:
    """``measure(index, frame)`` of each frame, checked to be uint8 RGB of one size; and
    the ``(H, W)`` size (``(0, 0)`` without frames)."""
    rows, size = [], None
    for index, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame {index}: expected a uint8 (H, W, 3) RGB image, got {frame.dtype} {frame.shape}")
        if size is None:
            size = frame.shape[:2]
        elif frame.shape[:2] != size:
            raise ValueError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, the first frame {size[1]}x{size[0]}")
        rows.append(measure(index, frame))
        if progress is not None:
            progress(1)
    return rows, tuple(size) if size is not None else _EMPTY_SIZE


def _face_mesh_row(face: Face | None) -> _FrameRow:
    """The face-mesh fields of a frame: landmarks, visibility and pose (NaN without a face)."""
    if face is None:
        return _FrameRow(_nan((NUM_LANDMARKS, 2)), np.zeros(NUM_LANDMARKS, dtype=bool), None, _nan((3,)), None)
    pose = np.array(face.pose.as_tuple(), dtype=np.float32)
    return _FrameRow(face.landmarks[:, :2].copy(), np.ones(NUM_LANDMARKS, dtype=bool), None, pose, None)


def _body_row(body: BodyPose, frame: np.ndarray) -> _FrameRow:
    found = body.detect(frame)
    if found is None:
        return _FrameRow(_nan((BODY_KEYPOINTS, 2)), np.zeros(BODY_KEYPOINTS, dtype=bool), None, None, None)
    points, visibility = found
    return _FrameRow(points, visibility > VISIBILITY_THRESHOLD, None, None, None)


def _nan(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, np.nan, dtype=np.float32)


def _stack(rows: list[_FrameRow], field: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """``(T, *shape)`` array of one field of the rows."""
    if not rows:
        return np.empty((0, *shape), dtype=dtype)
    return np.stack([getattr(row, field) for row in rows]).astype(dtype, copy=False)
