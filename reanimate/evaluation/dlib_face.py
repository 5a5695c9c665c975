"""dlib on RGB images: face boxes, 68 landmarks and 128-D identity descriptors.

dlib is optional (``pip install dlib-bin face_recognition_models``): :class:`DlibFace`
raises :class:`DlibUnavailable`, with the pip command, when it or its model files are
missing. dlib's detector misses turned heads that MediaPipe's face mesh still finds:
:func:`dlib_box_from_landmarks` makes the box dlib's detector would draw from the mesh's
landmarks (:data:`DLIB_BOX_FROM_MESH`).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from reanimate.errors import ReanimateError
from reanimate.faces.topology import LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS
from reanimate.faces.tracking import box_iou

__all__ = [
    "DLIB_BOX_FROM_MESH",
    "DLIB_INSTALL_HINT",
    "DLIB_MAX_SIDE",
    "DLIB_UPSAMPLE",
    "DlibFace",
    "DlibMeasurement",
    "DlibUnavailable",
    "dlib_box_from_landmarks",
    "dlib_model_folder",
    "landmark_box_frame",
]

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

    def measure(
        self, image: np.ndarray, mesh_box: np.ndarray | None = None, descriptor: bool = True, detect: bool = True
    ) -> DlibMeasurement | None:
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
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rectangles], dtype=np.float64).reshape(
            -1, 4
        ) / np.tile(scale, 2)
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
