"""Streaming video input: video files (via PyAV) and folders of frame images.

Frames are ``uint8`` numpy arrays of shape ``(H, W, 3)``, RGB (see :mod:`reanimate.io.image`).
Nothing here holds a whole video in memory: :class:`FrameReader` decodes one frame at a
time::

    with open_frames("driving.mp4") as reader:
        print(reader.fps, reader.frame_count, reader.size)
        for frame in reader:
            ...
"""

from __future__ import annotations

import logging
import math
import os
import weakref
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from reanimate.errors import InputError, ReanimateError
from reanimate.io.files import IMAGE_EXTENSIONS, is_image_path, list_frame_files
from reanimate.io.image import read_image, resize_area

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_FOLDER_FPS", "open_frames", "FrameReader", "frame_files", "read_frame_file"]

#: Frame rate reported for a folder of frames when none is given.
DEFAULT_FOLDER_FPS = 25.0
#: Frames a video may fall short of its declared count before it is called truncated.
_FRAME_COUNT_SLACK = 2


def ffmpeg_reason(exc: BaseException) -> str:
    """The human part of a PyAV/FFmpeg error, without errno and file name."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def open_frames(path: str | os.PathLike, fps: float | None = None) -> FrameReader:
    """Open a video file or a folder of frame images for streaming reading.

    Args:
        path: a video file (any container/codec FFmpeg can decode; the usual ones are
            :data:`VIDEO_EXTENSIONS`) or a folder of images (:data:`IMAGE_EXTENSIONS`,
            read in natural name order; other files and hidden files are ignored).
        fps: frame rate of a folder of frames (default 25). Ignored for video files, whose
            rate comes from the file.

    Raises:
        InputError: the path is missing, unreadable, has no frames, or is corrupt.
        ReanimateError: ``fps`` is given for a folder and is not a positive number.
    """
    return FrameReader(path, fps=fps)


class FrameReader:
    """Iterable over the frames of a video file or frame folder; a context manager.

    Each iteration starts from the first frame and yields ``uint8 (H, W, 3)`` RGB arrays one
    at a time (videos are decoded lazily; display-matrix rotation is applied). Leaving the
    ``with`` block, or :meth:`close`, stops iterations still in progress and releases
    their files.

    Attributes:
        path: the input path.
        fps: frames per second (float). Videos: the stream's average rate; folders: the
            ``fps`` argument or :data:`DEFAULT_FOLDER_FPS`.
        frame_count: number of frames; exact for folders, the container's declared count for
            videos, ``None`` when the container does not say.
        size: ``(width, height)`` of the first frame.
        has_audio: whether the file has an audio track (always False for folders).

    A folder whose frames differ in size gives every frame at the first frame's size
    (area averaging when shrinking, bilinear otherwise) and logs one warning;
    :attr:`resized` counts the frames resized so far.
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, "not found")
        if self.path.is_dir():
            self._source: _FolderSource | _VideoSource = _FolderSource(self.path, fps)
        else:
            if fps is not None:
                logger.debug("%s: fps=%s ignored, a video file has its own rate", self.path, fps)
            self._source = _VideoSource(self.path)
        self.fps: float = self._source.fps
        self.frame_count: int | None = self._source.frame_count
        self.size: tuple[int, int] = self._source.size
        self.has_audio: bool = self._source.has_audio
        self._live: weakref.WeakSet = weakref.WeakSet()

    @property
    def resized(self) -> int:
        """Frames of a folder resized to the first frame's size so far (0 for videos)."""
        return self._source.resized

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = self._source.frames()
        self._live.add(frames)
        return frames

    def read_frame(self, index: int) -> np.ndarray:
        """Return frame ``index`` (0-based) as ``uint8 (H, W, 3)``.

        Videos are decoded from the start up to ``index`` (no seeking, so this is exact but
        costs O(index)). Raises :class:`InputError` if ``index`` is out of range.
        """
        if index < 0:
            raise InputError(self.path, f"frame {index} is out of range (indices start at 0)")
        return self._source.read_frame(index)

    def close(self) -> None:
        """Stop iterations in progress and release their open files."""
        for frames in list(self._live):
            frames.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        width, height = self.size
        return (
            f"FrameReader({str(self.path)!r}, {width}x{height}, fps={self.fps:g}, "
            f"frame_count={self.frame_count}, has_audio={self.has_audio})"
        )


class _FolderSource:
    """Frames stored as image files in one folder, in natural name order."""

    has_audio = False

    def __init__(self, folder: Path, fps: float | None):
        self.folder = folder
        self.fps = DEFAULT_FOLDER_FPS if fps is None else check_fps(fps, folder)
        self.files = frame_files(folder)
        self.frame_count = len(self.files)
        self.resized = 0
        first = read_frame_file(self.files[0], 0)
        self.size = (first.shape[1], first.shape[0])

    def frames(self) -> Iterator[np.ndarray]:
        for index in range(len(self.files)):
            yield self._read(index)

    def read_frame(self, index: int) -> np.ndarray:
        if index >= len(self.files):
            raise InputError(self.folder, f"frame {index} is out of range (the folder has {len(self.files)} frames)")
        return self._read(index)

    def _read(self, index: int) -> np.ndarray:
        frame = read_frame_file(self.files[index], index)
        if (frame.shape[1], frame.shape[0]) == self.size:
            return frame
        # Frame folders exported by other tools sometimes mix sizes (issue 17); a video
        # has one size, so follow the first frame rather than refuse the folder.
        if self.resized == 0:
            logger.warning(
                "%s: frames differ in size (%s is %dx%d, the first frame %s is %dx%d); "
                "resizing every such frame to %dx%d",
                self.folder,
                self.files[index].name,
                frame.shape[1],
                frame.shape[0],
                self.files[0].name,
                *self.size,
                *self.size,
            )
        self.resized += 1
        width, height = self.size
        return resize_area(frame, height, width)


def frame_files(folder: Path) -> list[Path]:
    """The frame images of ``folder`` (:func:`~reanimate.io.files.list_frame_files`);
    :class:`InputError` when there are none."""
    files = list_frame_files(folder)
    if not files:
        raise InputError(
            folder, f"folder contains no frame images (expected {', '.join(sorted(IMAGE_EXTENSIONS))} files)"
        )
    return files


def read_frame_file(file: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a folder, stored in ``file``; errors name the file and index."""
    try:
        return read_image(file)
    except InputError as exc:
        raise InputError(file, f"frame {index}: {exc.problem}") from None


class _VideoSource:
    """A video file decoded with PyAV, frame by frame."""

    resized = 0

    def __init__(self, path: Path):
        self.path = path
        if is_image_path(path):
            raise InputError(path, "is an image, expected a video file or a folder of frames")
        container = open_media(path)
        try:
            stream = _video_stream(container, path)
            first = next(_decode_frames(container, stream, path), None)
            if first is None:
                raise InputError(path, "video contains no frames")
            self.size = (first.shape[1], first.shape[0])
            self.fps = _stream_fps(stream, path)
            self.frame_count = stream.frames or None
            self.has_audio = bool(container.streams.audio)
        finally:
            container.close()

    def frames(self) -> Iterator[np.ndarray]:
        container = open_media(self.path)
        try:
            stream = _video_stream(container, self.path)
            count = 0
            for frame in _decode_frames(container, stream, self.path):
                yield frame
                count += 1
            self._check_complete(count)
        finally:
            container.close()

    def _check_complete(self, decoded: int) -> None:
        """Compare the decoded count with the declared one once decoding has ended.

        A container's count can be off by a frame or two (edit lists, encoder delay), so a
        small shortfall only logs a warning; a clear one means the data was cut off.
        """
        if self.frame_count is None or decoded >= self.frame_count:
            return
        missing = self.frame_count - decoded
        if missing > max(_FRAME_COUNT_SLACK, self.frame_count // 100):
            raise InputError(
                self.path,
                f"video data ends at frame {decoded} but the file declares {self.frame_count} frames (truncated file?)",
            )
        logger.warning("%s: decoded %d frames, the file declares %d", self.path, decoded, self.frame_count)

    def read_frame(self, index: int) -> np.ndarray:
        frames = self.frames()
        position = -1
        try:
            for position, frame in enumerate(frames):
                if position == index:
                    return frame
        finally:
            frames.close()
        raise InputError(self.path, f"frame {index} is out of range (the video has {position + 1} frames)")


def open_media(path: Path, what: str = "video") -> av.container.InputContainer:
    """Open ``path`` with PyAV for reading its ``what`` ("video" or "audio"), turning
    failures into :class:`InputError`."""
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except EOFError:  # av.error.EOFError: nothing after the header
        raise InputError(path, f"file ends before any {what} data (empty or truncated)") from None
    except av.FFmpegError as exc:
        raise InputError(
            path, f"cannot be opened to read its {what} ({ffmpeg_reason(exc)}); is it a video file?"
        ) from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The first video stream, with threaded decoding enabled."""
    if not container.streams.video:
        raise InputError(path, "file has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _stream_fps(stream: av.video.stream.VideoStream, path: Path) -> float:
    """Average frame rate of a stream, falling back to FFmpeg's guess, then 25."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return float(rate)
    logger.warning("%s: frame rate unknown, assuming %g fps", path, DEFAULT_FOLDER_FPS)
    return DEFAULT_FOLDER_FPS


def _decode_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> Iterator[np.ndarray]:
    """Decode ``stream`` into RGB arrays, reporting decoder errors with the frame index."""
    index = 0
    try:
        for frame in container.decode(stream):
            yield _frame_to_rgb(frame)
            index += 1
    except av.FFmpegError as exc:
        raise InputError(path, f"corrupt video data at frame {index} ({ffmpeg_reason(exc)})") from None


def _frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame -> upright ``uint8 (H, W, 3)`` RGB (display rotation applied)."""
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = round((frame.rotation or 0) / 90) % 4
    if quarter_turns:
        # ``rotation`` is the counter-clockwise angle the display matrix applies.
        rgb = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
    return rgb


def check_fps(fps: float, path: Path) -> Fraction:
    """``fps`` as an exact :class:`Fraction` (denominator <= 100000).

    Raises :class:`ReanimateError` (a one-line user error: the rate usually comes from a
    command-line option) unless ``fps`` is a positive finite number.
    """
    try:
        valid = math.isfinite(float(fps)) and float(fps) > 0
    except (TypeError, ValueError):
        valid = False
    rate = Fraction(fps).limit_denominator(100000) if valid else Fraction(0)
    if rate <= 0:
        raise ReanimateError(f"{path}: frame rate must be a positive number, got {fps!r}")
    return rate
