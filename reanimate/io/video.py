"""Streaming video input and output: video files (via PyAV) and folders of frame images.

Frames are ``uint8`` numpy arrays of shape ``(H, W, 3)``, RGB (see :mod:`reanimate.io.image`).
Nothing here holds a whole video in memory: :class:`FrameReader` decodes one frame at a
time and :class:`FrameWriter` encodes each frame as it arrives.

Reading::

    with open_frames("driving.mp4") as reader:
        print(reader.fps, reader.frame_count, reader.size)
        for frame in reader:
            ...

Writing (the output appears at ``path`` only when the ``with`` block succeeds)::

    with open_writer("result.mp4", fps=reader.fps, audio_from="driving.mp4") as writer:
        for frame in frames:
            writer.write(frame)
"""

from __future__ import annotations

import logging
import math
import os
import re
import secrets
import shutil
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc, VideoReformatter
from PIL import Image

from reanimate.errors import InputError, ReanimateError
from reanimate.io.image import read_image

logger = logging.getLogger(__name__)

__all__ = [
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "is_video_path",
    "is_image_path",
    "natural_sort_key",
    "open_frames",
    "FrameReader",
    "open_writer",
    "FrameWriter",
]

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".gif", ".webm"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

#: Frame rate reported for a folder of frames when none is given.
DEFAULT_FOLDER_FPS = 25.0
#: ``AVCOL_SPC_BT709``: the colour matrix written into (and used for) encoded YUV video.
_AVCOL_SPC_BT709 = 1
_PNG_COMPRESS_LEVEL = 4
#: Frames a video may fall short of its declared count before it is called truncated.
_FRAME_COUNT_SLACK = 2


def is_video_path(path: str | os.PathLike) -> bool:
    """True when ``path`` ends with one of :data:`VIDEO_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_image_path(path: str | os.PathLike) -> bool:
    """True when ``path`` ends with one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def natural_sort_key(name: str) -> list[str | int]:
    """Sort key ordering digit runs by value: ``"2.png" < "10.png"``, case-insensitive."""
    parts = re.split(r"(\d+)", name.lower())
    # re.split with a capturing group alternates text, digits, text, ...: types line up.
    return [int(part) if index % 2 else part for index, part in enumerate(parts)]


def _ffmpeg_reason(exc: BaseException) -> str:
    """The human part of a PyAV/FFmpeg error, without errno and file name."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def open_frames(path: str | os.PathLike, fps: float | None = None) -> "FrameReader":
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

    def __enter__(self) -> "FrameReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        width, height = self.size
        return (f"FrameReader({str(self.path)!r}, {width}x{height}, fps={self.fps:g}, "
                f"frame_count={self.frame_count}, has_audio={self.has_audio})")


class _FolderSource:
    """Frames stored as image files in one folder, in natural name order."""

    has_audio = False

    def __init__(self, folder: Path, fps: float | None):
        self.folder = folder
        self.fps = DEFAULT_FOLDER_FPS if fps is None else _check_fps(fps, folder)
        self.files = _list_frame_files(folder)
        if not self.files:
            raise InputError(folder, "folder contains no frame images (expected "
                             f"{', '.join(sorted(IMAGE_EXTENSIONS))} files)")
        self.frame_count = len(self.files)
        first = self._read(0, check_size=False)
        self.size = (first.shape[1], first.shape[0])

    def frames(self) -> Iterator[np.ndarray]:
        for index in range(len(self.files)):
            yield self._read(index)

    def read_frame(self, index: int) -> np.ndarray:
        if index >= len(self.files):
            raise InputError(self.folder, f"frame {index} is out of range "
                             f"(the folder has {len(self.files)} frames)")
        return self._read(index)

    def _read(self, index: int, check_size: bool = True) -> np.ndarray:
        file = self.files[index]
        try:
            frame = read_image(file)
        except InputError as exc:
            raise InputError(file, f"frame {index}: {exc.problem}") from None
        if check_size and (frame.shape[1], frame.shape[0]) != self.size:
            width, height = self.size
            raise InputError(file, f"frame {index} is {frame.shape[1]}x{frame.shape[0]} but the "
                             f"first frame ({self.files[0].name}) is {width}x{height}")
        return frame


def _list_frame_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, hidden files excluded, in natural order."""
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise InputError(folder, f"cannot list folder ({exc.strerror or exc})") from None
    files = [p for p in entries
             if is_image_path(p) and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


class _VideoSource:
    """A video file decoded with PyAV, frame by frame."""

    def __init__(self, path: Path):
        self.path = path
        if is_image_path(path):
            raise InputError(path, "is an image, expected a video file or a folder of frames")
        container = _open_media(path)
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
        container = _open_media(self.path)
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
            raise InputError(self.path, f"video data ends at frame {decoded} but the file "
                             f"declares {self.frame_count} frames (truncated file?)")
        logger.warning("%s: decoded %d frames, the file declares %d", self.path, decoded,
                       self.frame_count)

    def read_frame(self, index: int) -> np.ndarray:
        frames = self.frames()
        position = -1
        try:
            for position, frame in enumerate(frames):
                if position == index:
                    return frame
        finally:
            frames.close()
        raise InputError(self.path, f"frame {index} is out of range "
                         f"(the video has {position + 1} frames)")


def _open_media(path: Path, what: str = "video") -> av.container.InputContainer:
    """Open ``path`` with PyAV for reading its ``what`` ("video" or "audio"), turning
    failures into :class:`InputError`."""
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except EOFError:  # av.error.EOFError: nothing after the header
        raise InputError(path, f"file ends before any {what} data (empty or truncated)") from None
    except av.FFmpegError as exc:
        raise InputError(path, f"cannot be opened to read its {what} ({_ffmpeg_reason(exc)}); "
                         "is it a video file?") from None
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


def _decode_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                   path: Path) -> Iterator[np.ndarray]:
    """Decode ``stream`` into RGB arrays, reporting decoder errors with the frame index."""
    index = 0
    try:
        for frame in container.decode(stream):
            yield _frame_to_rgb(frame)
            index += 1
    except av.FFmpegError as exc:
        raise InputError(path, f"corrupt video data at frame {index} "
                         f"({_ffmpeg_reason(exc)})") from None


def _frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame -> upright ``uint8 (H, W, 3)`` RGB (display rotation applied)."""
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = round((frame.rotation or 0) / 90) % 4
    if quarter_turns:
        # ``rotation`` is the counter-clockwise angle the display matrix applies.
        rgb = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
    return rgb


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _VideoFormat:
    """How to encode one output extension."""

    muxer: str
    codec: str
    pix_fmt: str
    even_size: bool  # the codec needs even width and height (4:2:0 H.264)
    audio: bool  # the container can carry an audio track
    container_options: tuple[tuple[str, str], ...] = ()


_MOV_OPTIONS = (("movflags", "+faststart"),)
_VIDEO_FORMATS = {
    ".mp4": _VideoFormat("mp4", "libx264", "yuv420p", True, True, _MOV_OPTIONS),
    ".mov": _VideoFormat("mov", "libx264", "yuv420p", True, True, _MOV_OPTIONS),
    ".mkv": _VideoFormat("matroska", "libx264", "yuv420p", True, True),
    ".avi": _VideoFormat("avi", "libx264", "yuv420p", True, True),
    ".webm": _VideoFormat("webm", "libvpx-vp9", "yuv420p", False, True),
    ".gif": _VideoFormat("gif", "gif", "pal8", False, False),
}


def open_writer(path: str | os.PathLike, fps: float,
                audio_from: str | os.PathLike | None = None, crf: int = 18,
                audio_range: tuple[float, float] | None = None) -> "FrameWriter":
    """Open an atomic, streaming writer of ``uint8 (H, W, 3)`` RGB frames.

    Output kinds, chosen by ``path``:

    * ``.mp4``, ``.mov``, ``.mkv``, ``.avi``: H.264 (libx264, yuv420p, BT.709, ``crf``);
      mp4/mov get the index at the front (``faststart``) for web playback;
    * ``.webm``: VP9 (libvpx-vp9, constant quality ``crf``, 0..63 scale);
    * ``.gif``: GIF, one 256-colour palette per frame; GIF stores frame delays in 1/100 s,
      so rates that do not divide 100 are approximated;
    * no suffix, or an existing folder: a folder of lossless PNG frames ``000000.png``,
      ``000001.png``, ...

    Everything is written to a hidden temporary sibling of ``path`` and renamed onto it
    only by a successful :meth:`FrameWriter.close`; on error (or :meth:`FrameWriter.abort`)
    the temporary is removed and an existing output at ``path`` is left untouched. A
    successful close replaces an existing file, or an existing folder as a whole.

    Args:
        path: output file or folder.
        fps: frame rate; stored exactly as ``Fraction(fps).limit_denominator(100000)``
            (29.97 stays 2997/100, 30000/1001 stays 30000/1001).
        audio_from: a media file whose first audio track is added to a video output (packets
            copied when the container accepts the codec, else transcoded to AAC, or Opus
            for WebM), cut where the video ends. No audio track there: silently no audio.
            Ignored for GIF and folder outputs.
        crf: quality for H.264 (0..51, lower is better; 18 is visually near-lossless) and
            VP9 (0..63).
        audio_range: ``(start, end)`` in seconds: take only this part of ``audio_from``'s
            audio, shifted to start with the video (for a clip cut from a longer video).
            The cut falls on the source's packet boundaries: audio packets that start in
            ``[start, end)`` are kept, each at its exact offset from ``start`` (so the
            first one may begin up to one packet, ~23 ms for AAC, after the video).
            ``None``: the audio from its beginning.

    Raises:
        InputError: the output folder does not exist, the extension is not supported, the
            encoder is missing, or ``audio_from`` does not exist.
        ReanimateError: ``fps`` is not a positive finite number.
        ValueError: ``crf`` is out of range, or ``audio_range`` is not ``0 <= start < end``.
    """
    path = Path(path)
    audio_range = _check_audio_range(audio_range)
    rate = _check_fps(fps, path)
    if not path.parent.is_dir():
        raise InputError(path, f"output folder {path.parent} does not exist")
    if path.is_dir() or not path.suffix:
        if path.exists() and not path.is_dir():
            raise InputError(path, "exists and is not a folder; cannot write frames into it")
        return _FolderWriter(path, rate)
    video_format = _VIDEO_FORMATS.get(path.suffix.lower())
    if video_format is None:
        supported = ", ".join(sorted(_VIDEO_FORMATS))
        raise InputError(path, f"unsupported output extension {path.suffix!r} "
                         f"(use {supported}, or a path without extension for PNG frames)")
    _check_encoder(video_format.codec, path)
    _check_crf(crf, video_format.codec)
    audio_path = None
    if audio_from is not None and video_format.audio and _has_audio(Path(audio_from)):
        audio_path = Path(audio_from)
    return _VideoFileWriter(path, rate, video_format, audio_path, int(crf), audio_range)


def _check_audio_range(audio_range) -> tuple[Fraction, Fraction] | None:
    """``(start, end)`` seconds as Fractions; ValueError unless ``0 <= start < end``."""
    if audio_range is None:
        return None
    try:
        start, end = (float(t) for t in audio_range)
    except (TypeError, ValueError):
        raise ValueError(f"audio_range must be (start, end) in seconds, got {audio_range!r}") from None
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
        raise ValueError(f"audio_range must satisfy 0 <= start < end, got {audio_range!r}")
    return Fraction(start), Fraction(end)


def _check_fps(fps: float, path: Path) -> Fraction:
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


def _has_audio(path: Path) -> bool:
    """Whether ``path`` (an existing media file) has an audio track; folders have none.

    Raises :class:`InputError` if ``path`` is missing or cannot be opened by FFmpeg.
    """
    if not path.exists():
        raise InputError(path, "audio source not found")
    if path.is_dir():
        logger.info("%s: a folder has no audio; the video will have none", path)
        return False
    source = _open_media(path, "audio")
    try:
        has_audio = bool(source.streams.audio)
    finally:
        source.close()
    if not has_audio:
        logger.info("%s: no audio track; the video will have none", path)
    return has_audio


def _check_crf(crf: int, codec: str) -> None:
    """ValueError unless ``crf`` is an integer in the codec's range (0..51 H.264, 0..63 VP9)."""
    top = 63 if codec == "libvpx-vp9" else 51
    if isinstance(crf, bool) or int(crf) != crf or not 0 <= crf <= top:
        raise ValueError(f"crf must be an integer in 0..{top} for {codec}, got {crf!r}")


def _check_encoder(codec: str, path: Path) -> None:
    """Raise :class:`InputError` if this PyAV/FFmpeg build cannot encode ``codec``."""
    try:
        av.codec.Codec(codec, "w")
    except (ValueError, av.FFmpegError):  # UnknownCodecError is a ValueError
        raise InputError(path, f"cannot write {path.suffix} here: the installed FFmpeg (PyAV) "
                         f"has no {codec} encoder; choose another extension") from None


class FrameWriter:
    """Streaming, atomic writer of ``uint8`` RGB frames; a context manager.

    Use :func:`open_writer` to make one. :meth:`write` takes one frame ``(H, W, 3)`` or a
    batch ``(N, H, W, 3)``; the first frame fixes the size. Leaving a ``with`` block
    normally calls :meth:`close` (publishes the output); leaving it by an exception calls
    :meth:`abort` (discards everything, ``path`` untouched).

    Attributes:
        path: the final output path.
        fps: the frame rate as a :class:`fractions.Fraction`.
        frames_written: number of frames accepted so far.
        size: ``(width, height)`` of the frames as given (before any codec padding), or
            ``None`` before the first frame.
    """

    def __init__(self, path: Path, rate: Fraction, temp: Path):
        self.path = path
        self.fps = rate
        self.frames_written = 0
        self.size: tuple[int, int] | None = None
        self._temp = temp
        self._closed = False
        # Removes the temporary if the writer is dropped without close()/abort().
        self._remove_temp = weakref.finalize(self, _remove_path, temp)

    def write(self, frames: np.ndarray) -> None:
        """Encode one ``uint8 (H, W, 3)`` frame or a ``(N, H, W, 3)`` batch, in order."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        batch = np.asarray(frames)
        if batch.dtype != np.uint8 or batch.ndim not in (3, 4) or batch.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (H, W, 3) or (N, H, W, 3), "
                             f"got {batch.dtype} {batch.shape}")
        for frame in batch if batch.ndim == 4 else (batch,):
            self._check_size(frame)
            self._write_frame(np.ascontiguousarray(frame))
            self.frames_written += 1

    def close(self) -> None:
        """Finish encoding and move the output onto :attr:`path`. Idempotent.

        Raises ``ValueError`` (after discarding the temporary) if no frame was written.
        """
        if self._closed:
            return
        if self.frames_written == 0:
            self.abort()
            raise ValueError(f"{self.path}: no frames were written; nothing saved")
        try:
            self._finish()
            self._publish()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._remove_temp.detach()
        logger.info("wrote %d frames to %s", self.frames_written, self.path)

    def abort(self) -> None:
        """Discard everything written so far; :attr:`path` is left as it was. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._discard()
        finally:
            self._remove_temp()

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _check_size(self, frame: np.ndarray) -> None:
        size = (frame.shape[1], frame.shape[0])
        if self.size is None:
            self.size = size
        elif size != self.size:
            raise ValueError(f"{self.path}: frame {self.frames_written} is {size[0]}x{size[1]} "
                             f"but the output was started at {self.size[0]}x{self.size[1]}")

    # Subclass hooks.
    def _write_frame(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush everything into the temporary."""

    def _publish(self) -> None:
        """Move the finished temporary onto :attr:`path`."""
        os.replace(self._temp, self.path)

    def _discard(self) -> None:
        """Release resources before the temporary is deleted."""


def _temp_sibling(path: Path, suffix: str = "") -> Path:
    """A fresh hidden name next to ``path``: ``.{name}.partial-{random}{suffix}``."""
    return path.with_name(f".{path.name}.partial-{secrets.token_hex(4)}{suffix}")


def _remove_path(path: Path) -> None:
    """Delete a file or folder if it exists (used for temporaries)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


class _FolderWriter(FrameWriter):
    """Lossless PNG frames ``000000.png, 000001.png, ...`` in a folder."""

    def __init__(self, path: Path, rate: Fraction):
        temp = _temp_sibling(path)
        temp.mkdir()
        super().__init__(path, rate, temp)

    def _write_frame(self, frame: np.ndarray) -> None:
        name = self._temp / f"{self.frames_written:06d}.png"
        Image.fromarray(frame).save(name, compress_level=_PNG_COMPRESS_LEVEL)

    def _publish(self) -> None:
        if not self.path.is_dir():
            os.replace(self._temp, self.path)
            return
        old = self.path.with_name(f".{self.path.name}.old-{secrets.token_hex(4)}")
        os.replace(self.path, old)
        try:
            os.replace(self._temp, self.path)
        except BaseException:
            os.replace(old, self.path)
            raise
        shutil.rmtree(old, ignore_errors=True)


class _VideoFileWriter(FrameWriter):
    """A video file encoded with PyAV as frames arrive (see :func:`open_writer`).

    For H.264 (4:2:0 chroma), a frame with an odd width or height is padded by one pixel at
    the right / bottom by repeating the edge pixels, so the file is up to one pixel larger
    than the frames written.
    """

    def __init__(self, path: Path, rate: Fraction, video_format: _VideoFormat,
                 audio_from: Path | None, crf: int,
                 audio_range: tuple[Fraction, Fraction] | None = None):
        temp = _temp_sibling(path, path.suffix)
        temp.open("xb").close()  # reserve the name; the muxer reopens it
        super().__init__(path, rate, temp)
        self._format = video_format
        self._audio_from = audio_from
        self._audio_range = audio_range
        self._crf = crf
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._audio: _AudioMuxer | None = None
        self._reformatter = VideoReformatter()

    def _write_frame(self, frame: np.ndarray) -> None:
        if self._format.even_size:
            frame = _pad_to_even(frame)
        if self._container is None:
            self._start(width=frame.shape[1], height=frame.shape[0])
        video_frame = self._to_video_frame(frame)
        video_frame.pts = self.frames_written
        self._container.mux(self._stream.encode(video_frame))
        if self._audio is not None:
            self._audio.feed_until((self.frames_written + 1) / self.fps)

    def _start(self, width: int, height: int) -> None:
        """Open the container and add the streams (once the frame size is known)."""
        if (width, height) != self.size:
            logger.info("%s: padding %dx%d frames to %dx%d (H.264 needs even sizes)",
                        self.path, *self.size, width, height)
        self._container = av.open(str(self._temp), mode="w", format=self._format.muxer,
                                  options=dict(self._format.container_options))
        self._stream = self._add_video_stream(width, height)
        if self._audio_from is not None:
            self._audio = _AudioMuxer.attach(self._audio_from, self._container, self._audio_range)

    def _add_video_stream(self, width: int, height: int) -> av.video.stream.VideoStream:
        codec = self._format.codec
        stream = self._container.add_stream(codec, rate=self.fps, time_base=1 / self.fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = self._format.pix_fmt
        if codec == "libx264":
            stream.options = {"crf": str(self._crf), "preset": "medium"}
        elif codec == "libvpx-vp9":
            stream.options = {"crf": str(self._crf), "b": "0", "row-mt": "1",
                              "deadline": "good", "cpu-used": "4"}
        if self._format.pix_fmt == "yuv420p":
            context = stream.codec_context
            context.colorspace = _AVCOL_SPC_BT709
            context.color_primaries = ColorPrimaries.BT709
            context.color_trc = ColorTrc.BT709
            context.color_range = ColorRange.MPEG
        return stream

    def _to_video_frame(self, frame: np.ndarray) -> av.VideoFrame:
        """RGB array -> frame in the codec's pixel format (BT.709 limited-range YUV or pal8)."""
        if self._format.pix_fmt == "pal8":
            return _quantized_frame(frame)
        rgb = av.VideoFrame.from_ndarray(frame, format="rgb24")
        return self._reformatter.reformat(rgb, format=self._format.pix_fmt,
                                          dst_colorspace=Colorspace.ITU709,
                                          dst_color_range=ColorRange.MPEG)

    def _finish(self) -> None:
        self._container.mux(self._stream.encode(None))
        if self._audio is not None:
            self._audio.finish(end_seconds=self.frames_written / self.fps)
        self._container.close()
        self._close_audio()

    def _discard(self) -> None:
        self._close_audio()
        if self._container is not None:
            try:
                self._container.close()
            except Exception as exc:  # the file is deleted anyway
                logger.debug("%s: error while closing an aborted output: %s", self.path, exc)

    def _close_audio(self) -> None:
        if self._audio is not None:
            self._audio.close()
            self._audio = None


def _pad_to_even(frame: np.ndarray) -> np.ndarray:
    """Pad ``(H, W, 3)`` by one row/column of edge pixels where H/W is odd."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if not (pad_h or pad_w):
        return frame
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _quantized_frame(frame: np.ndarray) -> av.VideoFrame:
    """RGB array -> ``pal8`` frame with its own 256-colour median-cut palette (for GIF)."""
    quantized = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT,
                                                dither=Image.Dither.NONE)
    colours = np.asarray(quantized.getpalette()[: 256 * 3], dtype=np.uint8).reshape(-1, 3)
    palette = np.zeros((256, 4), dtype=np.uint8)
    palette[:, 0] = 255  # opaque; PyAV takes ARGB
    palette[: len(colours), 1:] = colours
    return av.VideoFrame.from_ndarray((np.asarray(quantized, dtype=np.uint8), palette),
                                      format="pal8")


class _AudioMuxer:
    """Adds the first audio track of another file to an output container.

    Packets are pulled from the source lazily: :meth:`feed_until` muxes the audio that
    starts before a given time, so audio is interleaved with the video as it is encoded
    and memory stays bounded. Packets are copied unchanged when the output container
    accepts the codec, else decoded and re-encoded (AAC, or Opus for WebM). With an
    ``audio_range``, only packets starting inside it are used, shifted by its start.
    """

    def __init__(self, source: av.container.InputContainer, in_stream: av.audio.stream.AudioStream,
                 output: av.container.OutputContainer, out_stream: av.audio.stream.AudioStream,
                 transcode: bool, path: Path,
                 audio_range: tuple[Fraction, Fraction] | None = None):
        self._source = source
        self._in_stream = in_stream
        self._output = output
        self._out_stream = out_stream
        self._transcode = transcode
        self._path = path
        self._cut = audio_range is not None
        self._start, end = audio_range if self._cut else (Fraction(0), None)
        self._limit = None if end is None else end - self._start
        if self._start > 0:
            self._seek_before(self._start)
        self._packets = source.demux(in_stream)
        self._pending = self._next_packet()
        self._next_pts: int | None = None

    @classmethod
    def attach(cls, path: Path, output: av.container.OutputContainer,
               audio_range: tuple[Fraction, Fraction] | None = None) -> "_AudioMuxer | None":
        """Add an audio stream for ``path``'s audio to ``output``; None if it has none."""
        source = _open_media(path, "audio")
        if not source.streams.audio:
            source.close()
            return None
        in_stream = source.streams.audio[0]
        codec = in_stream.codec_context.name
        if codec in output.supported_codecs:
            out_stream = output.add_stream_from_template(in_stream)
            logger.info("%s: copying %s audio", path, codec)
            return cls(source, in_stream, output, out_stream, transcode=False, path=path,
                       audio_range=audio_range)
        target = "aac" if "aac" in output.supported_codecs else "libopus"
        rate = 48000 if target == "libopus" else in_stream.codec_context.sample_rate
        out_stream = output.add_stream(target, rate=rate)
        out_stream.layout = "stereo" if in_stream.channels > 1 else "mono"
        logger.info("%s: transcoding %s audio to %s", path, codec, target)
        return cls(source, in_stream, output, out_stream, transcode=True, path=path,
                   audio_range=audio_range)

    def feed_until(self, seconds: float | Fraction) -> None:
        """Mux every source packet that starts before ``seconds`` (output time)."""
        if self._limit is not None:
            seconds = min(seconds, self._limit)
        while self._pending is not None and _packet_start(self._pending) - self._start < seconds:
            self._mux(self._pending)
            self._pending = self._next_packet()

    def finish(self, end_seconds: float | Fraction) -> None:
        """Mux the audio that starts before ``end_seconds``, flush the encoder, stop."""
        self.feed_until(end_seconds)
        self._pending = None
        if self._transcode:
            self._output.mux(self._out_stream.encode(None))

    def close(self) -> None:
        self._source.close()

    def _next_packet(self) -> av.Packet | None:
        try:
            for packet in self._packets:
                if packet.size and (packet.pts is not None or packet.dts is not None):
                    if self._cut and _packet_start(packet) < self._start:
                        continue
                    return packet
        except av.FFmpegError as exc:
            logger.warning("%s: audio cut short by unreadable data (%s)", self._path,
                           _ffmpeg_reason(exc))
        return None

    def _mux(self, packet: av.Packet) -> None:
        if not self._transcode:
            if self._start:
                shift = round(self._start / packet.time_base)
                if packet.pts is not None:
                    packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
            packet.stream = self._out_stream
            self._output.mux(packet)
            return
        try:
            frames = self._in_stream.codec_context.decode(packet)
        except av.FFmpegError as exc:
            logger.warning("%s: skipping undecodable audio (%s)", self._path, _ffmpeg_reason(exc))
            return
        for frame in frames:
            self._stamp(frame)
            self._output.mux(self._out_stream.encode(frame))

    def _seek_before(self, seconds: Fraction) -> None:
        """Jump near ``seconds`` (a second early, packets before it are skipped anyway)
        instead of demuxing everything before it."""
        target = max(Fraction(0), seconds - 1)
        if not self._in_stream.time_base:
            return
        try:
            self._source.seek(int(target / self._in_stream.time_base), stream=self._in_stream,
                              backward=True)
        except av.FFmpegError as exc:  # not seekable: demux from where it is, the start
            logger.debug("%s: cannot seek the audio (%s)", self._path, _ffmpeg_reason(exc))

    def _stamp(self, frame: av.AudioFrame) -> None:
        """Give decoded audio continuous timestamps in samples (starting where it starts)."""
        if self._next_pts is None:
            start = frame.time - float(self._start) if frame.time is not None else 0.0
            self._next_pts = max(0, round(start * frame.sample_rate))
        frame.pts = self._next_pts
        frame.time_base = Fraction(1, frame.sample_rate)
        self._next_pts += frame.samples


def _packet_start(packet: av.Packet) -> Fraction:
    """Start time of a packet in seconds (pts, else dts)."""
    stamp = packet.pts if packet.pts is not None else packet.dts
    return stamp * packet.time_base
