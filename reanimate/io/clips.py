"""Frames of a dataset video by index, as float32 arrays of one fixed shape.

A *video* here is what a FOMM dataset holds (see :mod:`reanimate.data.frames`): a folder
of frame images, a video file (:data:`reanimate.io.VIDEO_EXTENSIONS`), or one image
holding the frames side by side, each ``frame_shape[1]`` pixels wide. Training draws a
few frames of a video at random (:func:`read_frames`); evaluation streams them all
(:func:`iter_frames`). Frames come out as float32 ``(H, W, 3)`` RGB in ``[0, 1]``,
resized to ``frame_shape[:2]`` (area averaging when shrinking, bilinear when enlarging).

The folders and files are read with :mod:`reanimate.io.reading`; a clip object
(:func:`open_clip`) only adds random access and the conversion.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from reanimate.errors import InputError, ReanimateError
from reanimate.io.files import VIDEO_EXTENSIONS, is_image_path, is_video_path
from reanimate.io.image import read_image, resize_area
from reanimate.io.reading import frame_files, open_frames, read_frame_file

__all__ = [
    "count_frames",
    "read_frames",
    "iter_frames",
    "frames_to_batch",
    "check_frame_shape",
    "open_clip",
    "FolderClip",
    "FileClip",
    "StackedClip",
    "ShortVideoError",
]

FrameShape = Sequence[int]


def count_frames(path: str | os.PathLike, frame_shape: FrameShape = (256, 256, 3)) -> int:
    """Number of frames of a video (folder, video file or side-by-side image).

    For a video file this is the count its container declares (decoding it to count
    when it declares none). ``frame_shape`` (``(H, W)`` or ``(H, W, 3)``) is needed for a
    side-by-side image, whose frames are ``frame_shape[1]`` wide.

    Raises:
        InputError: the path is missing, not a video, unreadable or has no frames.
    """
    return open_clip(Path(path), check_frame_shape(frame_shape)).num_frames


def read_frames(path: str | os.PathLike, indices: Sequence[int], frame_shape: FrameShape = (256, 256, 3)) -> np.ndarray:
    """The frames ``indices`` (0-based, any order, repeats allowed) of a video.

    Reads only what it needs: the listed files of a folder; a video file decoded from the
    start up to the largest index. Frames of another size than ``frame_shape[:2]`` are
    resized (area averaging when shrinking, bilinear when enlarging).

    Returns:
        float32 ``(len(indices), H, W, 3)`` in ``[0, 1]``, in the order of ``indices``.

    Raises:
        InputError: the video is unreadable or an index is out of range.
    """
    return open_clip(Path(path), check_frame_shape(frame_shape)).read(indices)


def iter_frames(path: str | os.PathLike, frame_shape: FrameShape = (256, 256, 3)) -> Iterator[np.ndarray]:
    """Stream every frame of a video as float32 ``(H, W, 3)`` in ``[0, 1]``, resized to
    ``frame_shape[:2]``. Holds one frame at a time (a side-by-side image: that image).

    Raises (when iterated):
        InputError: the video is unreadable.
    """
    shape = check_frame_shape(frame_shape)
    yield from open_clip(Path(path), shape).iterate()


def frames_to_batch(frames: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
    """float32 frames ``(H, W, 3)`` (from :func:`read_frames` / :func:`iter_frames`)
    -> a contiguous ``(N, 3, H, W)`` tensor."""
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def check_frame_shape(frame_shape: FrameShape) -> tuple[int, int]:
    """``(H, W)`` from ``(H, W)`` or ``(H, W, 3)``; :class:`ReanimateError` otherwise."""
    shape = tuple(frame_shape)
    if (
        len(shape) not in (2, 3)
        or (len(shape) == 3 and shape[2] != 3)
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape)
    ):
        raise ReanimateError(f"frame_shape must be [height, width, 3] with positive sizes, got {list(frame_shape)}")
    return int(shape[0]), int(shape[1])


def open_clip(
    path: Path, shape: tuple[int, int], known_count: int | None = None
) -> FolderClip | FileClip | StackedClip:
    """The reader for ``path``'s kind of video, giving frames of ``shape`` ``(H, W)``.
    ``known_count``: a video file's frame count found earlier (saves decoding it)."""
    if not path.exists():
        raise InputError(path, "not found")
    if path.is_dir():
        return FolderClip(path, shape)
    if is_video_path(path):
        return FileClip(path, shape, known_count)
    if is_image_path(path):
        return StackedClip(path, shape)
    raise InputError(
        path,
        "not a video: expected a folder of frames, a video file "
        f"({', '.join(sorted(VIDEO_EXTENSIONS))}) or an image of frames side by side",
    )


class ShortVideoError(InputError):
    """A video file ended before a requested frame: it has fewer frames than it declares
    (``available``; the :class:`FileClip` counts that many from then on)."""

    def __init__(self, path: Path, index: int, available: int):
        super().__init__(path, f"frame {index} is out of range (the video ends after {available} frames)")
        self.available = available


def _to_float(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 ``(h, w, 3)`` -> float32 ``(H, W, 3)`` in ``[0, 1]``, resized to ``shape``."""
    image = frame.astype(np.float32) / np.float32(255.0)
    if image.shape[:2] == tuple(shape):
        return image
    return np.clip(resize_area(image, *shape), 0.0, 1.0)


class FolderClip:
    """A folder of frame images (:func:`reanimate.io.list_frame_files`); each frame is
    resized to ``shape`` on its own, so frames of mixed sizes are fine."""

    def __init__(self, folder: Path, shape: tuple[int, int]):
        self.path = folder
        self.shape = shape
        self.files = frame_files(folder)

    @property
    def num_frames(self) -> int:
        return len(self.files)

    def read(self, indices: Sequence[int]) -> np.ndarray:
        indices = _check_indices(self.path, indices, len(self.files))
        loaded = {index: self._frame(index) for index in sorted(set(indices))}
        return _stack([loaded[index] for index in indices], self.shape)

    def iterate(self) -> Iterator[np.ndarray]:
        for index in range(len(self.files)):
            yield self._frame(index)

    def _frame(self, index: int) -> np.ndarray:
        return _to_float(read_frame_file(self.files[index], index), self.shape)


class FileClip:
    """A video file, decoded from its start with :func:`reanimate.io.open_frames`."""

    def __init__(self, path: Path, shape: tuple[int, int], known_count: int | None = None):
        self.path = path
        self.shape = shape
        self._count = known_count

    @property
    def num_frames(self) -> int:
        if self._count is None:
            with open_frames(self.path) as reader:
                count = reader.frame_count
                if count is None:  # the container does not say: decode to count
                    count = sum(1 for _ in reader)
            self._count = count
        return self._count

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Raises :class:`ShortVideoError` when the video ends before the largest index."""
        indices = _check_indices(self.path, indices, None)
        wanted = set(indices)
        last = max(wanted, default=-1)
        loaded: dict[int, np.ndarray] = {}
        position = -1
        if last >= 0:
            with open_frames(self.path) as reader:
                for position, frame in enumerate(reader):
                    if position in wanted:
                        loaded[position] = _to_float(frame, self.shape)
                    if position == last:
                        break  # no need to decode further
            if last not in loaded:
                self._count = position + 1
                raise ShortVideoError(self.path, last, position + 1)
        return _stack([loaded[index] for index in indices], self.shape)

    def iterate(self) -> Iterator[np.ndarray]:
        with open_frames(self.path) as reader:
            for frame in reader:
                yield _to_float(frame, self.shape)


class StackedClip:
    """One image holding the frames side by side, each ``shape[1]`` pixels wide."""

    def __init__(self, path: Path, shape: tuple[int, int]):
        self.path = path
        self.shape = shape
        self.image = read_image(path)
        width = self.image.shape[1]
        if width % shape[1]:
            raise InputError(
                path,
                f"is {width} pixels wide, not a multiple of the frame width "
                f"{shape[1]} (an image of frames side by side needs frame_shape "
                "[height, width, 3] of one frame)",
            )

    @property
    def num_frames(self) -> int:
        return self.image.shape[1] // self.shape[1]

    def read(self, indices: Sequence[int]) -> np.ndarray:
        indices = _check_indices(self.path, indices, self.num_frames)
        return _stack([self._frame(index) for index in indices], self.shape)

    def iterate(self) -> Iterator[np.ndarray]:
        for index in range(self.num_frames):
            yield self._frame(index)

    def _frame(self, index: int) -> np.ndarray:
        width = self.shape[1]
        return _to_float(self.image[:, index * width : (index + 1) * width], self.shape)


def _check_indices(path: Path, indices: Sequence[int], count: int | None) -> list[int]:
    """``indices`` as ints, each in ``[0, count)`` (only ``>= 0`` when count is unknown)."""
    checked = [operator.index(i) for i in np.asarray(indices).reshape(-1).tolist()]
    for index in checked:
        if index < 0:
            raise InputError(path, f"frame {index} is out of range (indices start at 0)")
        if count is not None and index >= count:
            raise InputError(path, f"frame {index} is out of range (the video has {count} frames)")
    return checked


def _stack(frames: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    if not frames:
        return np.zeros((0, *shape, 3), dtype=np.float32)
    return np.stack(frames)
