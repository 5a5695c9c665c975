"""Per-frame measurements of a video for the evaluation metrics, with an on-disk cache.

:class:`FeatureExtractor` reads, frame by frame, what :mod:`reanimate.evaluation.metrics`
compares:

* ``kind="face"``: MediaPipe's 478 face-mesh landmarks (tracked through the video, the
  largest face of each frame; for AKD, MKR and jitter), the head pose from them (yaw,
  pitch, roll degrees, :func:`reanimate.faces.head_pose`; for APD) and, with dlib, its
  68-point landmarks and 128-D face descriptors (for AED and CSIM);
* ``kind="body"``: MediaPipe Pose's 33 landmarks with their visibility.

The result is a :class:`VideoFeatures` of per-frame arrays (pixels of the frames
measured, NaN where nothing was found). :class:`FeatureCache` stores them under the
digest of the input file's bytes and the extractor's :attr:`FeatureExtractor.version`,
so that re-evaluating a model only measures its new (generated) videos.

dlib is optional (``pip install dlib-bin face_recognition_models``): without it, or
without the model files, the dlib fields are None and :attr:`FeatureExtractor.missing`
says what to install. :class:`DlibFace` wraps dlib's detector, shape predictor and
descriptor for other users (the face-quality benchmark).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from reanimate.errors import InputError, ReanimateError
from reanimate.faces._optional import require_face_mesh
from reanimate.faces.mesh import Face, FaceMesh, _quiet_native_stderr
from reanimate.faces.topology import LEFT_EYE_CORNERS, NUM_LANDMARKS, RIGHT_EYE_CORNERS
from reanimate.faces.tracking import box_iou
from reanimate.io import is_image_path, natural_sort_key, open_frames, read_image

__all__ = [
    "BODY_KEYPOINTS",
    "DLIB_INSTALL_HINT",
    "DlibFace",
    "DlibMeasurement",
    "DlibUnavailable",
    "FeatureCache",
    "FeatureExtractor",
    "VISIBILITY_THRESHOLD",
    "VideoFeatures",
    "dlib_model_folder",
    "file_digest",
    "iterate_frames",
]

#: Bump whenever the extraction code changes what it measures (invalidates caches).
EXTRACTOR_VERSION = 1
#: Format of the ``.npz`` files written by :meth:`VideoFeatures.save`.
FEATURES_FORMAT = 1
KINDS = ("face", "body")
#: MediaPipe Pose landmarks per body.
BODY_KEYPOINTS = 33
#: A body landmark is visible where MediaPipe's visibility score is above this.
VISIBILITY_THRESHOLD = 0.5
#: MediaPipe Pose model; only complexity 1 ships inside the mediapipe wheel (no download).
POSE_MODEL_COMPLEXITY = 1
#: Faces the face mesh looks for per frame; the largest one is measured.
MAX_FACES = 2
DLIB_LANDMARKS = 68
EMBEDDING_SIZE = 128
#: dlib runs on frames no larger than this (longest side, pixels): enough for its
#: 150x150 face chips, and much faster on large frames.
DLIB_MAX_SIDE = 640
#: dlib's detector upsamples the image this many times (finds faces down to ~40 px).
DLIB_UPSAMPLE = 1
DLIB_INSTALL_HINT = "pip install dlib-bin face_recognition_models"
DLIB_SHAPE_MODEL = "shape_predictor_68_face_landmarks.dat"
DLIB_DESCRIPTOR_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
#: The box dlib's frontal detector draws around a face, from its MediaPipe landmarks:
#: (x0, y0, x1, y1) offsets from the landmarks' mean, in units of the 3-D distance between
#: the outer eye corners. Medians over the bundled example's driving clip (frames where
#: dlib finds the face; ``python benchmarks/dlib_box_fit.py``). dlib's shape predictor
#: and descriptor were trained on its detector's boxes: on real clips the descriptor from
#: this box is 0.06 from the detection's on average, from the landmarks' own bounding box
#: 0.16 (up to 0.65).
DLIB_BOX_FROM_MESH = (-0.758, -0.675, 0.679, 0.755)
_HASH_CHUNK = 1 << 20
_EMPTY_SIZE = (0, 0)

Progress = Callable[[int], object]


# --------------------------------------------------------------------------------------
# The measurements of one video
# --------------------------------------------------------------------------------------


@dataclass(eq=False)
class VideoFeatures:
    """Per-frame measurements of one video (``T`` frames).

    Attributes:
        kind: ``"face"`` or ``"body"``.
        size: ``(H, W)`` of the frames measured; coordinates are pixels of those frames.
        keypoints: ``(T, K, 2)`` float32 ``(x, y)`` pixels, NaN where missing. Faces:
            ``K = 478`` MediaPipe face-mesh landmarks; bodies: ``K = 33`` pose landmarks
            (coordinates kept where found, even where not visible).
        visible: ``(T, K)`` bool. Faces: True where a face was found; bodies: True where
            the pose was found and the landmark's visibility is above
            :data:`VISIBILITY_THRESHOLD`.
        keypoints68: ``(T, 68, 2)`` float32 dlib 68-point landmarks (faces), NaN where
            no face; None when dlib is unavailable or they were not asked for.
        pose: ``(T, 3)`` float32 (yaw, pitch, roll) degrees of the face-mesh face, NaN
            where no face (see :class:`reanimate.faces.HeadPose`); None for bodies.
        identity: ``(T, 128)`` float32 dlib face descriptors, NaN rows where no face or
            not computed (``identity_every``); None when dlib is unavailable or not asked.
    """

    kind: str
    size: tuple[int, int]
    keypoints: np.ndarray
    visible: np.ndarray
    keypoints68: np.ndarray | None = None
    pose: np.ndarray | None = None
    identity: np.ndarray | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        self.size = (int(self.size[0]), int(self.size[1]))
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        if self.keypoints.ndim != 3 or self.keypoints.shape[2] != 2:
            raise ValueError(f"keypoints must be (T, K, 2), got shape {self.keypoints.shape}")
        frames, count = self.keypoints.shape[:2]
        self.visible = _checked(self.visible, (frames, count), bool, "visible")
        self.keypoints68 = _checked(self.keypoints68, (frames, DLIB_LANDMARKS, 2), np.float32, "keypoints68")
        self.pose = _checked(self.pose, (frames, 3), np.float32, "pose")
        self.identity = _checked(self.identity, (frames, EMBEDDING_SIZE), np.float32, "identity")

    def __len__(self) -> int:
        """Number of frames ``T``."""
        return self.keypoints.shape[0]

    @property
    def found(self) -> np.ndarray:
        """``(T,)`` bool: frames where the face (or body) was found."""
        return np.isfinite(self.keypoints).all(axis=(1, 2)) if len(self) else np.zeros(0, dtype=bool)

    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` (``.npz``) atomically: a temporary file in the same folder,
        then renamed; nothing is left at ``path`` on error."""
        path = Path(path)
        arrays = {"format": np.int64(FEATURES_FORMAT), "kind": np.str_(self.kind),
                  "size": np.array(self.size, dtype=np.int64),
                  "keypoints": self.keypoints, "visible": self.visible}
        for name in ("keypoints68", "pose", "identity"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        try:
            _write_atomically(path, lambda stream: np.savez(stream, **arrays))
        except OSError as exc:
            raise InputError(path, f"cannot be written ({exc.strerror or exc})") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "VideoFeatures":
        """Read a file written by :meth:`save`; :class:`InputError` if it is not one."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "format" not in data or int(data["format"]) != FEATURES_FORMAT:
                    raise InputError(path, f"is not a video-features file of format {FEATURES_FORMAT}")
                optional = {name: data[name] for name in ("keypoints68", "pose", "identity") if name in data}
                return cls(kind=str(data["kind"]), size=tuple(data["size"].tolist()),
                           keypoints=data["keypoints"], visible=data["visible"], **optional)
        except FileNotFoundError:
            raise InputError(path, "not found") from None
        except OSError as exc:
            raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
        except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(path, f"is not a valid video-features file ({exc})") from None


def _checked(array, shape: tuple[int, ...], dtype, name: str) -> np.ndarray | None:
    """``array`` as ``dtype``, checked to be ``shape``; None stays None."""
    if array is None:
        return None
    array = np.asarray(array, dtype=dtype)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    return array


def _write_atomically(path: Path, write: Callable[[object], None]) -> None:
    """Call ``write(binary stream)`` on a temporary file next to ``path``, then rename it."""
    descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            write(stream)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------
# dlib: face boxes, 68 landmarks, identity descriptors
# --------------------------------------------------------------------------------------


class DlibUnavailable(ReanimateError):
    """dlib or its model files are missing; the message says what to install."""


class DlibMeasurement(NamedTuple):
    """What :meth:`DlibFace.measure` found for one face.

    Attributes:
        box: ``(4,)`` float64 ``(x0, y0, x1, y1)`` pixels of the face box used.
        from_mesh: True when dlib's detector missed the face and ``mesh_box`` was used.
        landmarks68: ``(68, 2)`` float32 ``(x, y)`` pixels of the image given.
        descriptor: ``(128,)`` float32 face descriptor, or None when not asked.
    """

    box: np.ndarray
    from_mesh: bool
    landmarks68: np.ndarray
    descriptor: np.ndarray | None


def dlib_model_folder() -> Path:
    """The ``models`` folder of the ``face_recognition_models`` package, found without
    importing it (its ``__init__`` needs ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DlibUnavailable(f"dlib's model files are missing: {DLIB_INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibFace:
    """dlib's frontal face detector, 68-point shape predictor and ResNet face descriptor
    (the ``face_recognition_models`` files), on RGB ``uint8 (H, W, 3)`` images.

    Everything runs on the image shrunk to at most :data:`DLIB_MAX_SIDE` pixels (longest
    side); boxes and landmarks are given back in pixels of the image passed in. dlib's
    detector misses turned heads, which MediaPipe's face mesh still finds: a
    ``mesh_box`` given to :meth:`measure` is used then; :func:`dlib_box_from_landmarks`
    makes one like the detector's (descriptors about 0.06 from the detection's).

    Raises:
        DlibUnavailable: dlib is not installed or a model file is missing (one line, with
            the pip command).
    """

    def __init__(self, models: str | os.PathLike | None = None):
        try:
            import dlib
        except ImportError as exc:
            raise DlibUnavailable(f"dlib is not installed ({exc}): {DLIB_INSTALL_HINT}") from None
        folder = dlib_model_folder() if models is None else Path(models)
        files = {name: folder / name for name in (DLIB_SHAPE_MODEL, DLIB_DESCRIPTOR_MODEL)}
        absent = [name for name, file in files.items() if not file.is_file()]
        if absent:
            raise DlibUnavailable(f"dlib's model file {absent[0]} is not in {folder}: {DLIB_INSTALL_HINT}")
        self.version = str(dlib.__version__)
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(files[DLIB_SHAPE_MODEL]))
        self._descriptor = dlib.face_recognition_model_v1(str(files[DLIB_DESCRIPTOR_MODEL]))

    def detect(self, image: np.ndarray) -> np.ndarray:
        """``(N, 4)`` float64 boxes ``(x0, y0, x1, y1)`` of dlib's detections, in pixels
        of ``image``, largest first."""
        return self._detect_shrunk(*_shrink(image))

    def measure(self, image: np.ndarray, mesh_box: np.ndarray | None = None,
                descriptor: bool = True, detect: bool = True) -> DlibMeasurement | None:
        """68 landmarks (and the descriptor) of one face of an RGB ``uint8 (H, W, 3)`` image.

        The face is dlib's detection that overlaps ``mesh_box`` (``(4,)`` pixels, e.g.
        :func:`dlib_box_from_landmarks`) most, or ``mesh_box`` itself when no detection
        overlaps it; without ``mesh_box``, the largest detection. None when there is no
        face. ``detect=False``: ``mesh_box`` is used as given (the detector is not run).
        """
        small, scale = _shrink(image)
        if detect or mesh_box is None:
            box, from_mesh = _choose_box(self._detect_shrunk(small, scale), mesh_box)
        else:
            box, from_mesh = np.asarray(mesh_box, dtype=np.float64), True
        if box is None:
            return None
        x0, y0, x1, y1 = np.rint(box * np.tile(scale, 2)).astype(int).tolist()
        shape = self._shape(small, self._dlib.rectangle(x0, y0, x1, y1))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32) / scale.astype(np.float32)
        vector = None
        if descriptor:
            vector = np.array(self._descriptor.compute_face_descriptor(small, shape), dtype=np.float32)
        return DlibMeasurement(box, from_mesh, points, vector)

    def _detect_shrunk(self, small: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Detections on the shrunk image, as boxes in pixels of the original, largest first."""
        rectangles = self._detector(small, DLIB_UPSAMPLE)
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rectangles],
                         dtype=np.float64).reshape(-1, 4) / np.tile(scale, 2)
        return boxes[np.argsort(-_box_areas(boxes), kind="stable")]


def landmark_box_frame(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The frame :data:`DLIB_BOX_FROM_MESH` is given in: ``(2,)`` the mean of ``(478, 3)``
    landmarks (pixels) and the 3-D distance of the outer eye corners."""
    points = np.asarray(landmarks, dtype=np.float64)
    size = float(np.linalg.norm(points[RIGHT_EYE_CORNERS[0]] - points[LEFT_EYE_CORNERS[0]]))
    return points[:, :2].mean(axis=0), size


def dlib_box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """``(478, 3)`` MediaPipe landmarks (pixels) -> ``(4,)`` the box dlib's detector
    would draw around that face (:data:`DLIB_BOX_FROM_MESH`): what :meth:`DlibFace.measure`
    should be given where the detector misses the face."""
    centre, size = landmark_box_frame(landmarks)
    return np.tile(centre, 2) + size * np.asarray(DLIB_BOX_FROM_MESH)


def _choose_box(detections: np.ndarray, mesh_box: np.ndarray | None) -> tuple[np.ndarray | None, bool]:
    """The face box for :meth:`DlibFace.measure` and whether it is ``mesh_box``."""
    if mesh_box is None:
        return (detections[0], False) if len(detections) else (None, False)
    mesh_box = np.asarray(mesh_box, dtype=np.float64)
    if len(detections):
        overlaps = box_iou(mesh_box, detections)[0]
        if overlaps.max() > 0:
            return detections[int(np.argmax(overlaps))], False
    return mesh_box, True


def _shrink(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` shrunk to at most :data:`DLIB_MAX_SIDE` px (contiguous), and the
    ``(2,)`` float64 ``(x, y)`` scale factors from the original to it."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    factor = DLIB_MAX_SIDE / max(height, width)
    if factor >= 1:
        return np.ascontiguousarray(image), np.ones(2)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    return np.ascontiguousarray(small), np.array([size[0] / width, size[1] / height])


def _box_areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


# --------------------------------------------------------------------------------------
# MediaPipe Pose
# --------------------------------------------------------------------------------------


class _BodyPose:
    """MediaPipe Pose in video (tracking) mode: 33 landmarks of one body per frame."""

    def __init__(self):
        require_face_mesh()  # imports mediapipe with its logging turned down, or the hint
        import mediapipe as mp

        with _quiet_native_stderr():
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

    def __enter__(self) -> "_BodyPose":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# --------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------


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
            with _BodyPose() as body:
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
        return row._replace(keypoints68=found.landmarks68,
                            identity=row.identity if found.descriptor is None else found.descriptor)

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

    def __enter__(self) -> "FeatureExtractor":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeatureExtractor({self.version!r})"


def _measure_frames(frames: Iterable[np.ndarray], measure: Callable[[int, np.ndarray], _FrameRow],
                    progress: Progress | None) -> tuple[list[_FrameRow], tuple[int, int]]:
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
            raise ValueError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                             f"{size[1]}x{size[0]}")
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


def _body_row(body: _BodyPose, frame: np.ndarray) -> _FrameRow:
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


# --------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------


def file_digest(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file's bytes, read in chunks. For a folder of frames: of
    its frame images' names (in natural order) and bytes, other files ignored.

    Raises:
        InputError: the path is missing or cannot be read, or a folder has no images.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "not found")
    digest = hashlib.sha256()
    if not path.is_dir():
        _hash_file(digest, path)
        return digest.hexdigest()
    files = _frame_files(path)
    if not files:
        raise InputError(path, "folder contains no frame images")
    for file in files:  # each name and its bytes' digest: no two folders give the same stream
        name = file.name.encode("utf-8", "surrogateescape")
        digest.update(len(name).to_bytes(8, "little") + name)
        content = hashlib.sha256()
        _hash_file(content, file)
        digest.update(content.digest())
    return digest.hexdigest()


def _hash_file(digest, path: Path) -> None:
    """Feed the bytes of ``path`` to ``digest``, a chunk at a time."""
    try:
        with open(path, "rb") as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None


def _frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, as :func:`reanimate.io.open_frames` reads them."""
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise InputError(folder, f"cannot list folder ({exc.strerror or exc})") from None
    files = [p for p in entries if is_image_path(p) and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


def iterate_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The frames of a video file, a frame folder or a single image, one at a time."""
    path = Path(path)
    if is_image_path(path) and not path.is_dir():
        yield read_image(path)
        return
    with open_frames(path) as reader:
        yield from reader


class FeatureCache:
    """:class:`VideoFeatures` stored in ``directory``, one ``.npz`` per (input, extractor).

    The key is the sha256 of the input's bytes (:func:`file_digest`) together with
    :attr:`FeatureExtractor.version` (code version, detectors, kind and options): a file
    whose bytes change, or an extractor that measures differently, misses; renaming or
    moving a file does not. Files are named ``<digest>-<version hash>.npz`` and written
    atomically. ``hits`` and ``misses`` count the :meth:`get` calls of each kind.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    def path_for(self, path: str | os.PathLike, extractor: FeatureExtractor) -> Path:
        """Where the features of ``path`` by ``extractor`` are (or would be) stored."""
        version = hashlib.sha256(extractor.version.encode()).hexdigest()[:16]
        return self.directory / f"{file_digest(path)}-{version}.npz"

    def get(self, path: str | os.PathLike, extractor: FeatureExtractor,
            progress: Progress | None = None) -> VideoFeatures:
        """The features of the video file, frame folder or image at ``path``: from the
        cache, or measured with ``extractor`` (``progress`` as in its call) and stored.

        Raises:
            InputError: ``path`` cannot be read or decoded, or the cache folder cannot be
                written.
        """
        stored = self.path_for(path, extractor)
        if stored.is_file():
            try:
                features = VideoFeatures.load(stored)
            except InputError:
                pass  # a damaged entry: measure again and replace it
            else:
                self.hits += 1
                return features
        self.misses += 1
        with contextlib.closing(iterate_frames(path)) as frames:
            features = extractor(frames, progress)
        self._store(stored, features)
        return features

    def _store(self, stored: Path, features: VideoFeatures) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            features.save(stored)
        except OSError as exc:
            raise InputError(self.directory, f"cannot write the feature cache ({exc.strerror or exc})") from None
