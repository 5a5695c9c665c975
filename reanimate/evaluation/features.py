"""The per-frame measurements of one video (:class:`VideoFeatures`) and their file format.

What :class:`~reanimate.evaluation.extractor.FeatureExtractor` measures and
:class:`~reanimate.evaluation.cache.FeatureCache` stores: one ``.npz`` per video, written
atomically, with a format number checked on reading.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reanimate.errors import InputError
from reanimate.io.files import atomic_path

__all__ = ["DLIB_LANDMARKS", "EMBEDDING_SIZE", "FEATURES_FORMAT", "KINDS", "VideoFeatures"]

#: Format of the ``.npz`` files written by :meth:`VideoFeatures.save`.
FEATURES_FORMAT = 1
KINDS = ("face", "body")
#: dlib's face landmarks per face.
DLIB_LANDMARKS = 68
#: Length of dlib's face descriptor.
EMBEDDING_SIZE = 128


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
            :data:`~reanimate.evaluation.body_pose.VISIBILITY_THRESHOLD`.
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
        arrays = {
            "format": np.int64(FEATURES_FORMAT),
            "kind": np.str_(self.kind),
            "size": np.array(self.size, dtype=np.int64),
            "keypoints": self.keypoints,
            "visible": self.visible,
        }
        for name in ("keypoints68", "pose", "identity"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        try:
            with atomic_path(path) as temp, open(temp, "wb") as stream:
                np.savez(stream, **arrays)
        except OSError as exc:
            raise InputError(path, f"cannot be written ({exc.strerror or exc})") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> VideoFeatures:
        """Read a file written by :meth:`save`; :class:`InputError` if it is not one."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "format" not in data or int(data["format"]) != FEATURES_FORMAT:
                    raise InputError(path, f"is not a video-features file of format {FEATURES_FORMAT}")
                optional = {name: data[name] for name in ("keypoints68", "pose", "identity") if name in data}
                return cls(
                    kind=str(data["kind"]),
                    size=tuple(data["size"].tolist()),
                    keypoints=data["keypoints"],
                    visible=data["visible"],
                    **optional,
                )
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
