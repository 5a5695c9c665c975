"""Head-pose pseudo-labels of training videos, computed once and cached beside each video.

MMFA (paper 003, §3.2) takes the rotation of Eq. 5 from a pretrained head-pose network
(Hopenet), which cannot be downloaded here. Its stand-in is the face mesh's head pose
(:func:`reanimate.faces.head_pose`, the signs ``reanimate faces`` prints), read for every
frame of every training video the first time a run needs it and written to
``<video>.pose.npz`` next to the video (a folder of frames ``train/id0/`` gets
``train/id0.pose.npz``; ``a.mp4`` gets ``a.pose.npz``): ``angles`` ``(N, 3)`` yaw,
pitch, roll in degrees, ``found`` ``(N,)`` whether a face was seen (frames without one take
the angles of the nearest frame with one).

:class:`HeadPoseLabels` wraps a training :class:`~reanimate.data.frames.FramesDataset`
and adds ``source_pose`` / ``driving_pose`` to its samples, corrected for the samples'
augmentation: a horizontal flip negates yaw and roll; a rotation of the frames by ``a``
degrees counter-clockwise subtracts ``a`` from the roll (clockwise positive).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from ..errors import InputError
from ..io.clips import iter_frames
from ..io.files import atomic_path
from .frames import FramesDataset

log = logging.getLogger(__name__)

#: the longer side frames are read at for the face mesh (small training frames are enlarged)
LABEL_SIDE = 256
POSE_SUFFIX = ".pose.npz"


def pose_label_path(video: str | Path) -> Path:
    """Where the labels of ``video`` (a folder of frames or a file) are cached."""
    video = Path(video)
    stem = video.name if video.is_dir() else video.stem
    return video.parent / f"{stem}{POSE_SUFFIX}"


def fill_missing(angles: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Angles of frames without a face from the nearest frame with one (the earlier on a tie).

    Args:
        angles: ``(N, 3)``; found: ``(N,)`` bool with at least one True.
    """
    index = np.flatnonzero(found)
    position = np.searchsorted(index, np.arange(len(found)))
    before = index[np.clip(position - 1, 0, len(index) - 1)]
    after = index[np.clip(position, 0, len(index) - 1)]
    nearest = np.where(np.abs(np.arange(len(found)) - before) <= np.abs(after - np.arange(len(found))), before, after)
    return angles[nearest]


def compute_pose_labels(video: str | Path, frame_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Face-mesh head pose of every frame of ``video``.

    Args:
        frame_shape: ``(H, W)`` of the training frames (the aspect the frames are read at).

    Returns:
        ``angles`` float32 ``(N, 3)`` (yaw, pitch, roll, degrees; missing frames filled,
        :func:`fill_missing`) and ``found`` bool ``(N,)``.

    Raises:
        InputError: no frame of the video shows a face.
    """
    from ..faces import FaceMesh, head_pose

    height, width = frame_shape
    scale = LABEL_SIDE / max(height, width)
    shape = (max(1, round(height * scale)), max(1, round(width * scale)), 3)
    angles, found = [], []
    with FaceMesh(video=True) as mesh:
        for frame in iter_frames(video, shape):
            faces = mesh.detect(np.round(frame * 255).astype(np.uint8))
            if faces:
                pose = head_pose(faces[0].landmarks)
                angles.append((pose.yaw, pose.pitch, pose.roll))
            else:
                angles.append((0.0, 0.0, 0.0))
            found.append(bool(faces))
    angles, found = np.asarray(angles, dtype=np.float32).reshape(-1, 3), np.asarray(found, dtype=bool)
    if not found.any():
        raise InputError(video, "no face found in any frame (head-pose labels need a face; remove the video)")
    return fill_missing(angles, found), found


def load_pose_labels(video: str | Path) -> np.ndarray:
    """The cached ``(N, 3)`` angles of ``video``."""
    path = pose_label_path(video)
    try:
        with np.load(path) as data:
            return data["angles"].astype(np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(
            path, f"unreadable head-pose labels ({exc.__class__.__name__}); delete it to recompute"
        ) from None


def cache_pose_labels(videos: FramesDataset, progress: bool = True) -> int:
    """Compute and write the labels of every video of ``videos`` that has none yet.

    Returns:
        how many videos were labelled now.
    """
    paths = [videos.root / name for names in _all_videos(videos) for name in names]
    todo = [p for p in paths if not pose_label_path(p).is_file()]
    for path in tqdm(todo, desc="head-pose labels", unit="video", disable=not progress or not todo):
        angles, found = compute_pose_labels(path, videos.frame_shape[:2])
        with atomic_path(pose_label_path(path)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, angles=angles, found=found)
        if not found.all():
            log.info(
                "%s: no face in %d of %d frames (their labels are the nearest frame's)",
                path,
                (~found).sum(),
                len(found),
            )
    return len(todo)


def _all_videos(videos: FramesDataset) -> list[list[str]]:
    if videos.id_sampling:
        return [videos._id_videos[name] for name in videos.videos]
    return [videos.videos]


def augmented_angles(angles: np.ndarray, mirrored: bool, rotation: float) -> np.ndarray:
    """Labels of frames after the augmentation (see the module doc).

    Args:
        angles: ``(..., 3)``; rotation: degrees counter-clockwise the frames were turned.
    """
    out = np.array(angles, dtype=np.float32, copy=True)
    if mirrored:
        out[..., 0] *= -1
        out[..., 2] *= -1
    out[..., 2] -= rotation
    out[..., 2] = (out[..., 2] + 180.0) % 360.0 - 180.0
    return out


class HeadPoseLabels(Dataset):
    """Training samples of ``videos`` with ``source_pose`` and ``driving_pose`` float32
    ``(3,)`` (yaw, pitch, roll in degrees). Labels are computed on construction where
    missing (:func:`cache_pose_labels`)."""

    def __init__(self, videos: FramesDataset, progress: bool = True):
        if not videos.is_train:
            raise ValueError("head-pose labels are for the training split")
        self.videos = videos
        cache_pose_labels(videos, progress)
        self._labels: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.videos)

    def _angles(self, name: str) -> np.ndarray:
        if name not in self._labels:
            self._labels[name] = load_pose_labels(self.videos.root / name)
        return self._labels[name]

    def __getitem__(self, item):
        sample = self.videos[item]
        angles = self._angles(sample["name"])
        indices = sample["indices"].numpy()
        if indices.max() >= len(angles):
            raise InputError(
                pose_label_path(self.videos.root / sample["name"]),
                f"has {len(angles)} frames of labels but the video has more; delete it to recompute",
            )
        poses = augmented_angles(angles[indices], bool(sample["mirrored"]), float(sample["rotation"]))
        sample["source_pose"], sample["driving_pose"] = torch.from_numpy(poses[0]), torch.from_numpy(poses[1])
        return sample


__all__ = [
    "HeadPoseLabels",
    "augmented_angles",
    "cache_pose_labels",
    "compute_pose_labels",
    "fill_missing",
    "load_pose_labels",
    "pose_label_path",
]
