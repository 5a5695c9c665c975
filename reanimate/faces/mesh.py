"""Face landmarks with MediaPipe's face mesh (468 mesh points + 10 iris points).

MediaPipe is installed apart (``--no-deps``, see the README) and imported on first use.
Its normalised landmarks are turned into pixels of the analysed image: ``x`` and ``y`` in pixels, ``z`` (depth
relative to the head's centre, smaller = nearer the camera) multiplied by the image
width, as MediaPipe's z is in the scale of x.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import cv2
import numpy as np

from reanimate.errors import ReanimateError
from reanimate.faces.optional import require_face_mesh
from reanimate.faces.pose import HeadPose, head_pose
from reanimate.faces.topology import LEFT_EYE, NUM_LANDMARKS, RIGHT_EYE

#: Points of the face mesh proper; the 10 iris points (468..477) are left out of boxes.
MESH_POINTS = 468
#: Side of the blank image run once when a FaceMesh starts (see FaceMesh.__init__).
_WARM_UP_SIZE = 64
#: Longer side above which FaceMesh.detect analyses a downscaled copy: MediaPipe's face
#: detector works on a 128 px version anyway; huge photos (12000 px) cost time and miss faces.
MAX_DETECTION_SIDE = 2048


@contextlib.contextmanager
def quiet_native_stderr():
    """Send file descriptor 2 to /dev/null while MediaPipe's C++ code starts up.

    Building the graph and its first run print INFO/WARNING lines from C++ (TF Lite,
    absl) straight to the descriptor, where Python's logging cannot reach them. Anything
    else written to stderr by other threads in that short window is lost too.
    """
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2: nothing to silence
        saved = None
    if saved is None:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass
class Face:
    """One detected face.

    Attributes:
        landmarks: ``(478, 3)`` float32: x, y in pixels of the analysed image (x right, y
            down), z in pixels too (depth relative to the head's centre, smaller = nearer
            the camera). Indices follow :mod:`reanimate.faces.topology`.
    """

    landmarks: np.ndarray

    def __post_init__(self):
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32)
        assert self.landmarks.shape == (NUM_LANDMARKS, 3), (
            f"expected ({NUM_LANDMARKS}, 3) landmarks, got {self.landmarks.shape}"
        )

    @property
    def box(self) -> np.ndarray:
        """``(x0, y0, x1, y1)`` float64: bounds of the 468 mesh points, in pixels."""
        mesh = self.landmarks[:MESH_POINTS, :2].astype(np.float64)
        return np.concatenate([mesh.min(axis=0), mesh.max(axis=0)])

    @property
    def area(self) -> float:
        """Area of :attr:`box` in square pixels."""
        x0, y0, x1, y1 = self.box
        return float((x1 - x0) * (y1 - y0))

    @property
    def center(self) -> np.ndarray:
        """``(x, y)`` centre of :attr:`box`."""
        return (self.box[:2] + self.box[2:]) / 2

    @property
    def pose(self) -> HeadPose:
        """Head orientation, see :func:`reanimate.faces.head_pose`."""
        return head_pose(self.landmarks)


class FaceMesh:
    """MediaPipe face-mesh detector; a context manager.

    Args:
        max_faces: at most this many faces per image.
        video: ``True`` for consecutive video frames: MediaPipe then tracks the faces
            found in the previous frame instead of detecting them afresh (faster, steadier;
            frames must be given in order). ``False`` treats every image independently.
        refine: refine eyes and lips and add the 10 iris points. Without it the iris
            points are stand-ins, all at the centres of the eyes.
        min_detection_confidence, min_tracking_confidence: MediaPipe's thresholds.

    >>> with FaceMesh() as mesh:
    ...     faces = mesh.detect(image)
    """

    def __init__(
        self,
        max_faces: int = 1,
        video: bool = False,
        refine: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ):
        if max_faces < 1:
            raise ReanimateError(f"max_faces must be at least 1, got {max_faces}")
        face_mesh = require_face_mesh()
        with quiet_native_stderr():
            self._mesh = face_mesh.FaceMesh(
                static_image_mode=not video,
                max_num_faces=int(max_faces),
                refine_landmarks=refine,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )
            # The graph's threads log while starting up; one run on a blank image waits
            # for them to finish before stderr is given back. (No face: no tracking state.)
            self._mesh.process(np.zeros((_WARM_UP_SIZE, _WARM_UP_SIZE, 3), dtype=np.uint8))
        self.max_faces = int(max_faces)
        self.video = video
        self.refine = refine
        self._runs = 0

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a ``uint8 (H, W, 3)`` RGB image, largest :attr:`Face.area` first.

        An image whose longer side exceeds :data:`MAX_DETECTION_SIDE` is analysed as a
        downscaled copy; the landmarks are still in the given image's pixels."""
        if self._mesh is None:
            raise ValueError("FaceMesh is closed")
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
        analysed = _detection_copy(image)
        quiet = quiet_native_stderr() if self._runs == 0 else contextlib.nullcontext()
        with quiet:
            result = self._mesh.process(analysed)
        self._runs += 1
        # The landmarks are normalised to the analysed copy, which shows the whole image:
        # scaling by the full image's size gives its pixels.
        height, width = image.shape[:2]
        scale = np.array([width, height, width], dtype=np.float32)
        faces = []
        for face in result.multi_face_landmarks or ():
            points = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            if len(points) == MESH_POINTS:  # refine=False: no iris points; repeat the eye centres
                points = np.concatenate([points, _iris_stand_ins(points)])
            faces.append(Face(points * scale))
        return sorted(faces, key=lambda f: f.area, reverse=True)

    __call__ = detect

    def reset(self) -> None:
        """Forget the faces tracked so far (video mode): the next frame is detected afresh,
        as by a new FaceMesh."""
        if self._mesh is None:
            raise ValueError("FaceMesh is closed")
        self._mesh.reset()

    def close(self) -> None:
        """Release MediaPipe's graph. Idempotent."""
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def __enter__(self) -> FaceMesh:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _detection_copy(image: np.ndarray) -> np.ndarray:
    """``image``, or a copy whose longer side is :data:`MAX_DETECTION_SIDE` (area
    averaging) when it is longer; contiguous, as MediaPipe needs."""
    height, width = image.shape[:2]
    factor = MAX_DETECTION_SIDE / max(height, width)
    if factor >= 1:
        return np.ascontiguousarray(image)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)


def _iris_stand_ins(points: np.ndarray) -> np.ndarray:
    """``(10, 3)`` iris points for a mesh without them: each eye's 5 points at its centre."""
    right = points[list(RIGHT_EYE)].mean(axis=0)
    left = points[list(LEFT_EYE)].mean(axis=0)
    return np.concatenate([np.repeat(right[None], 5, 0), np.repeat(left[None], 5, 0)])


def detect_faces(image: np.ndarray, max_faces: int = 5) -> list[Face]:
    """Faces in one ``uint8 (H, W, 3)`` RGB image, largest first (a one-off :class:`FaceMesh`)."""
    with FaceMesh(max_faces=max_faces) as mesh:
        return mesh.detect(image)
