"""Streaming, atomic video output: video files (via PyAV) and folders of PNG frames.

:class:`FrameWriter` encodes each frame as it arrives, into a hidden temporary sibling
of the output (:func:`reanimate.io.files.atomic_path`) that replaces the output only
when everything succeeded::

    with open_writer("result.mp4", fps=reader.fps, audio_from="driving.mp4") as writer:
        for frame in frames:
            writer.write(frame)

Video files are encoded in a worker thread, behind a queue of at most
:data:`QUEUE_FRAMES` frames, so the caller's next frames are computed while the last
ones are encoded and memory stays bounded. A caller that changes only part of a frame between writes (a face
pasted into a still picture) says where (``write(frame, changed=boxes)``): video writers
then convert only those parts to YUV.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import weakref
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc
from PIL import Image

from reanimate.errors import InputError, OutputError
from reanimate.io.audio import AudioMuxer, check_audio_range, has_audio
from reanimate.io.files import atomic_path, remove_path
from reanimate.io.reading import check_fps, ffmpeg_reason

logger = logging.getLogger(__name__)

__all__ = ["open_writer", "FrameWriter"]

#: ``AVCOL_SPC_BT709``: the colour matrix written into (and used for) encoded YUV video.
_AVCOL_SPC_BT709 = 1
_PNG_COMPRESS_LEVEL = 4
#: What a failing disk, folder or muxer raises while an output is written.
_WRITE_ERRORS = (OSError, av.FFmpegError)
#: H.264 quality by default (0..51, lower is better): visually near-lossless.
DEFAULT_CRF = 18
#: libx264's speed/size trade-off by default. At the same ``crf`` (about the same visual
#: quality), "veryfast" encodes 2048x2048 frames twice as fast as "medium" (FFmpeg's
#: default) with half the encoder memory (it looks 10 frames ahead, not 40); slower
#: presets usually give smaller files.
DEFAULT_PRESET = "veryfast"
#: libx264's presets, fastest first.
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
#: Frames waiting between :meth:`FrameWriter.write` and the encoder thread: enough to
#: overlap the caller's work with encoding, few enough to bound memory.
QUEUE_FRAMES = 2


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


def open_writer(
    path: str | os.PathLike,
    fps: float,
    audio_from: str | os.PathLike | None = None,
    crf: int = DEFAULT_CRF,
    audio_range: tuple[float, float] | None = None,
    overwrite: bool = False,
    preset: str = DEFAULT_PRESET,
    threaded: bool = True,
) -> FrameWriter:
    """Open an atomic, streaming writer of ``uint8 (H, W, 3)`` RGB frames.

    Output kinds, chosen by ``path``:

    * ``.mp4``, ``.mov``, ``.mkv``, ``.avi``: H.264 (libx264, yuv420p, BT.709, ``crf``,
      ``preset``); mp4/mov get the index at the front (``faststart``) for web playback;
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
        preset: libx264's speed/size trade-off, one of :data:`X264_PRESETS` (default
            :data:`DEFAULT_PRESET`); the same ``crf`` gives about the same quality with
            any preset, slower ones give smaller files. Ignored for other outputs.
        threaded: encode a video file in a worker thread (default), overlapping the
            caller's work; an encoding error is raised by a later
            :meth:`FrameWriter.write` or by :meth:`FrameWriter.close`. Frame folders are
            always written as the frames come.
        audio_range: ``(start, end)`` in seconds: take only this part of ``audio_from``'s
            audio, shifted to start with the video (for a clip cut from a longer video).
            The cut falls on the source's packet boundaries: audio packets that start in
            ``[start, end)`` are kept, each at its exact offset from ``start`` (so the
            first one may begin up to one packet, ~23 ms for AAC, after the video).
            ``None``: the audio from its beginning.
        overwrite: allow replacing a frame folder that exists and is not empty (its files
            are deleted when the new frames are published). An existing empty folder, or
            an existing file replaced by a video, needs no permission.

    Raises:
        OutputError: (an :class:`InputError`) the output folder does not exist or cannot
            be written, ``path`` is an existing folder but a video is asked for, or is a
            non-empty frame folder without ``overwrite``; also raised by
            :meth:`FrameWriter.write` / :meth:`FrameWriter.close` when writing fails (disk
            full), after removing the temporary.
        InputError: the extension is not supported, the encoder is missing, or
            ``audio_from`` does not exist.
        ReanimateError: ``fps`` is not a positive finite number.
        ValueError: ``crf`` is out of range, ``preset`` is not a libx264 preset, or
            ``audio_range`` is not ``0 <= start < end``.
    """
    path = Path(path)
    audio_range = check_audio_range(audio_range)
    rate = check_fps(fps, path)
    if preset not in X264_PRESETS:
        raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
    if not path.parent.is_dir():
        raise OutputError(path, f"output folder {path.parent} does not exist")
    video_format = _VIDEO_FORMATS.get(path.suffix.lower())
    if path.is_dir() and video_format is not None:
        raise OutputError(
            path, f"is an existing folder, cannot write a {path.suffix} video there; choose another output name"
        )
    if path.is_dir() or not path.suffix:
        if path.exists() and not path.is_dir():
            raise OutputError(path, "exists and is not a folder; cannot write frames into it")
        if not overwrite and _has_entries(path):
            raise OutputError(
                path,
                "frame folder exists and is not empty; choose a new or empty "
                "folder, or allow replacing it (open_writer(..., overwrite=True))",
            )
        return _FolderWriter(path, rate)
    if video_format is None:
        supported = ", ".join(sorted(_VIDEO_FORMATS))
        raise InputError(
            path,
            f"unsupported output extension {path.suffix!r} "
            f"(use {supported}, or a path without extension for PNG frames)",
        )
    _check_encoder(video_format.codec, path)
    _check_crf(crf, video_format.codec)
    audio_path = None
    if audio_from is not None and video_format.audio and has_audio(Path(audio_from)):
        audio_path = Path(audio_from)
    return _VideoFileWriter(path, rate, video_format, audio_path, int(crf), audio_range, preset, threaded)


def _has_entries(folder: Path) -> bool:
    """Whether ``folder`` exists and holds anything (hidden files count)."""
    if not folder.is_dir():
        return False
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is not None
    except OSError as exc:
        raise _write_error(folder, exc, "cannot list the existing output folder") from None


def _write_error(path: Path, exc: BaseException, what: str = "writing failed") -> OutputError:
    """A one-line :class:`OutputError` for an OS/FFmpeg failure while writing ``path``."""
    return OutputError(path, f"{what} ({ffmpeg_reason(exc)}); nothing was saved")


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
        raise InputError(
            path,
            f"cannot write {path.suffix} here: the installed FFmpeg (PyAV) "
            f"has no {codec} encoder; choose another extension",
        ) from None


class _Discard(Exception):
    """Thrown into :func:`atomic_path` to make it delete the temporary, not publish it."""


#: Tells the encoder thread that no more frames come.
_STOP = object()


class FrameWriter:
    """Streaming, atomic writer of ``uint8`` RGB frames; a context manager.

    Use :func:`open_writer` to make one. :meth:`write` takes one frame ``(H, W, 3)`` or a
    batch ``(N, H, W, 3)``; the first frame fixes the size. Leaving a ``with`` block
    normally calls :meth:`close` (publishes the output); leaving it by an exception calls
    :meth:`abort` (discards everything, ``path`` untouched). A failure of the disk or the
    muxer raises :class:`OutputError` and discards everything too.

    Frames are converted (copied) in the caller's thread, so the caller may reuse its
    buffer as soon as :meth:`write` returns; video files are encoded in a worker thread
    (unless opened with ``threaded=False``), whose errors are raised by a later
    :meth:`write` or by :meth:`close`, after discarding everything.

    Attributes:
        path: the final output path.
        fps: the frame rate as a :class:`fractions.Fraction`.
        frames_written: number of frames accepted so far.
        size: ``(width, height)`` of the frames as given (before any codec padding), or
            ``None`` before the first frame.
    """

    def __init__(self, path: Path, rate: Fraction, directory: bool = False, suffix: str = "", threaded: bool = False):
        self.path = path
        self.fps = rate
        self.frames_written = 0
        self.size: tuple[int, int] | None = None
        self._closed = False
        self._threaded = threaded
        self._jobs: queue.Queue | None = None
        self._worker: threading.Thread | None = None
        self._failure: BaseException | None = None  # what the worker raised
        self._cancelled = False  # the worker drops what is queued
        # The temporary's life is atomic_path's: entered here, left by close() (publish)
        # or abort() (delete).
        self._atomic = atomic_path(path, directory=directory, suffix=suffix)
        try:
            self._temp = self._atomic.__enter__()
        except OSError as exc:
            what = "a folder" if directory else "a file"
            raise _write_error(path, exc, f"cannot create {what} in {path.parent}") from None
        # Removes the temporary if the writer is dropped without close()/abort().
        self._remove_temp = weakref.finalize(self, remove_path, self._temp)

    def write(self, frames: np.ndarray, changed=None) -> None:
        """Encode one ``uint8 (H, W, 3)`` frame or a ``(N, H, W, 3)`` batch, in order.

        Args:
            frames: the frame(s).
            changed: boxes ``(x0, y0, x1, y1)`` (pixels, ``x1``/``y1`` exclusive) outside
                which each frame equals the frame written before it (a face pasted into
                a still picture); a video writer then converts only those parts. None:
                anything may have changed. Wrong boxes give wrong frames.
        """
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        batch = np.asarray(frames)
        if batch.dtype != np.uint8 or batch.ndim not in (3, 4) or batch.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (H, W, 3) or (N, H, W, 3), got {batch.dtype} {batch.shape}")
        boxes = None if changed is None else [tuple(int(v) for v in box) for box in changed]
        assert boxes is None or all(len(b) == 4 for b in boxes), (
            f"changed must be (x0, y0, x1, y1) boxes, got {changed}"
        )
        for frame in batch if batch.ndim == 4 else (batch,):
            self._check_size(frame)
            try:
                self._raise_failure()
                item = self._prepare(np.ascontiguousarray(frame), boxes if self.frames_written else None)
                self._submit(item)
            except _WRITE_ERRORS as exc:
                self.abort()
                raise _write_error(self.path, exc) from None
            self.frames_written += 1

    def close(self) -> None:
        """Finish encoding and move the output onto :attr:`path`. Idempotent.

        Raises ``ValueError`` (after discarding the temporary) if no frame was written,
        :class:`OutputError` (after discarding it) if encoding, finishing or publishing
        fails.
        """
        if self._closed:
            return
        if self.frames_written == 0:
            self.abort()
            raise ValueError(f"{self.path}: no frames were written; nothing saved")
        try:
            self._join_worker()
            self._raise_failure()
            self._finish()
            self._atomic.__exit__(None, None, None)  # flush to disk, rename onto path
        except _WRITE_ERRORS as exc:
            self.abort()
            raise _write_error(self.path, exc) from None
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
        self._cancelled = True
        try:
            self._join_worker()
            self._discard()
        finally:
            self._atomic.__exit__(_Discard, _Discard(), None)  # deletes the temporary
            self._remove_temp()

    def __enter__(self) -> FrameWriter:
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
            raise ValueError(
                f"{self.path}: frame {self.frames_written} is {size[0]}x{size[1]} "
                f"but the output was started at {self.size[0]}x{self.size[1]}"
            )

    # The encoder thread.
    def _submit(self, item) -> None:
        if not self._threaded:
            self._encode(item)
            return
        if self._worker is None:
            self._jobs = queue.Queue(QUEUE_FRAMES)
            # The thread holds the writer weakly: a writer dropped without close() or
            # abort() is collected, and the finalizer ends the thread.
            self._worker = threading.Thread(
                target=_encode_queued, args=(weakref.ref(self), self._jobs), name="reanimate-encode", daemon=True
            )
            self._end_worker = weakref.finalize(self, _put_stop, self._jobs)
            self._worker.start()
        self._jobs.put(item)

    def _join_worker(self) -> None:
        """Wait until the worker has encoded (or, once cancelled, dropped) every queued frame."""
        if self._worker is not None:
            self._jobs.put(_STOP)
            self._worker.join()
            self._worker = None
            self._end_worker.detach()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    # Subclass hooks.
    def _prepare(self, frame: np.ndarray, changed: list[tuple[int, int, int, int]] | None):
        """What :meth:`_encode` needs for frame number :attr:`frames_written`, owning its
        memory (the caller may reuse ``frame``); runs in the caller's thread."""
        raise NotImplementedError

    def _encode(self, item) -> None:
        """Encode one prepared frame; runs in the worker thread, in order."""
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush everything into the temporary."""

    def _discard(self) -> None:
        """Release resources before the temporary is deleted."""


def _encode_queued(writer_ref, jobs: queue.Queue) -> None:
    """The encoder thread: encode queued frames in order until :data:`_STOP`. After a
    failure (kept for the writer to raise) or an abort, queued frames are dropped, so
    that a caller blocked on the full queue goes on."""
    while True:
        item = jobs.get()
        if item is _STOP:
            return
        writer = writer_ref()
        if writer is None:
            return
        if writer._failure is None and not writer._cancelled:
            try:
                writer._encode(item)
            except BaseException as exc:  # raised in the caller's thread
                writer._failure = exc
        del writer, item


def _put_stop(jobs: queue.Queue) -> None:
    try:
        jobs.put_nowait(_STOP)
    except queue.Full:  # the worker is busy; it stops at its next frame (writer gone)
        pass


class _FolderWriter(FrameWriter):
    """Lossless PNG frames ``000000.png, 000001.png, ...`` in a folder (replaced whole,
    see :func:`reanimate.io.files.replace_path`)."""

    def __init__(self, path: Path, rate: Fraction):
        # Not threaded: PNG frames are written as they come, so a full disk stops the
        # write that filled it.
        super().__init__(path, rate, directory=True)

    def _prepare(self, frame, changed):
        return self.frames_written, frame

    def _encode(self, item) -> None:
        index, frame = item
        Image.fromarray(frame).save(self._temp / f"{index:06d}.png", compress_level=_PNG_COMPRESS_LEVEL)


class _VideoFileWriter(FrameWriter):
    """A video file encoded with PyAV as frames arrive (see :func:`open_writer`).

    For H.264 (4:2:0 chroma), a frame with an odd width or height is padded by one pixel at
    the right / bottom by repeating the edge pixels, so the file is up to one pixel larger
    than the frames written.
    """

    def __init__(
        self,
        path: Path,
        rate: Fraction,
        video_format: _VideoFormat,
        audio_from: Path | None,
        crf: int,
        audio_range: tuple[Fraction, Fraction] | None = None,
        preset: str = DEFAULT_PRESET,
        threaded: bool = False,
    ):
        # The temporary keeps the extension: the muxer is chosen by it.
        super().__init__(path, rate, suffix=path.suffix, threaded=threaded)
        self._format = video_format
        self._audio_from = audio_from
        self._audio_range = audio_range
        self._crf = crf
        self._preset = preset
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._audio: AudioMuxer | None = None
        self._yuv: _Yuv420Canvas | None = None
        try:
            self._temp.open("xb").close()  # reserve the name; the muxer reopens it
        except OSError as exc:
            self.abort()
            raise _write_error(path, exc, f"cannot create a file in {path.parent}") from None

    def _prepare(self, frame, changed):
        if self._container is None:
            height, width = frame.shape[:2]
            if self._format.even_size:
                height, width = height + height % 2, width + width % 2
            self._start(width, height)
        if self._format.pix_fmt == "pal8":
            return self.frames_written, frame.copy() if self._threaded else frame
        if self._yuv is None:
            self._yuv = _Yuv420Canvas(self._stream.height, self._stream.width)
        self._yuv.update(frame, changed)
        return self.frames_written, self._yuv.video_frame()

    def _encode(self, item) -> None:
        index, frame = item
        if isinstance(frame, np.ndarray):
            frame = _quantized_frame(frame)
        frame.pts = index
        self._container.mux(self._stream.encode(frame))
        if self._audio is not None:
            self._audio.feed_until((index + 1) / self.fps)

    def _start(self, width: int, height: int) -> None:
        """Open the container and add the streams (once the frame size is known)."""
        if (width, height) != self.size:
            logger.info(
                "%s: padding %dx%d frames to %dx%d (H.264 needs even sizes)", self.path, *self.size, width, height
            )
        self._container = av.open(
            str(self._temp), mode="w", format=self._format.muxer, options=dict(self._format.container_options)
        )
        self._stream = self._add_video_stream(width, height)
        if self._audio_from is not None:
            self._audio = AudioMuxer.attach(self._audio_from, self._container, self._audio_range)

    def _add_video_stream(self, width: int, height: int) -> av.video.stream.VideoStream:
        codec = self._format.codec
        stream = self._container.add_stream(codec, rate=self.fps, time_base=1 / self.fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = self._format.pix_fmt
        if codec == "libx264":
            stream.options = {"crf": str(self._crf), "preset": self._preset}
        elif codec == "libvpx-vp9":
            stream.options = {"crf": str(self._crf), "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
        if self._format.pix_fmt == "yuv420p":
            context = stream.codec_context
            context.colorspace = _AVCOL_SPC_BT709
            context.color_primaries = ColorPrimaries.BT709
            context.color_trc = ColorTrc.BT709
            context.color_range = ColorRange.MPEG
        return stream

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


# BT.709 (ITU-R BT.709-6, item 3.2-3.3) in limited ("MPEG") range: Y in 16..235, Cb and
# Cr in 16..240, as the streams are tagged. Rows for cv2.transform of RGB: weights, offset.
_KR, _KB = 0.2126, 0.0722
_KG = 1 - _KR - _KB
_LUMA = np.array([[_KR, _KG, _KB, 0]]) * 219 / 255 + [0, 0, 0, 16]
_CHROMA = np.array(
    [
        [-_KR / (2 - 2 * _KB), -_KG / (2 - 2 * _KB), 0.5, 0],
        [0.5, -_KG / (2 - 2 * _KR), -_KB / (2 - 2 * _KR), 0],
    ]
) * 224 / 255 + [0, 0, 0, 128]


class _Yuv420Canvas:
    """The frame being written as BT.709 limited-range YUV 4:2:0 planes, updated in place.

    Luma is converted per pixel, chroma from the mean of each 2x2 block of RGB, so a
    region whose corners lie on even coordinates converts exactly as it does within the
    whole frame: :meth:`update` converts only the ``changed`` boxes (widened to even
    coordinates). Frames with an odd width or height are padded at the right / bottom by
    repeating the edge pixels.

    Args:
        height, width: the video's size (an odd size is the frames' own: 4:2:0 chroma
            then covers one pixel beyond the edge, as FFmpeg's yuv420p does).
    """

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        even_h, even_w = height + height % 2, width + width % 2
        self.planes = (
            np.zeros((even_h, even_w), np.uint8),
            np.zeros((even_h // 2, even_w // 2), np.uint8),
            np.zeros((even_h // 2, even_w // 2), np.uint8),
        )
        self._started = False

    def update(self, frame: np.ndarray, changed=None) -> None:
        """Convert ``frame`` (``uint8 (H, W, 3)`` RGB, at most one pixel smaller than the
        canvas each way) where it changed: inside the ``changed`` boxes, or everywhere
        (None, and always the first time)."""
        luma = self.planes[0]
        if changed is None or not self._started:
            changed = [(0, 0, luma.shape[1], luma.shape[0])]
        self._started = True
        for x0, y0, x1, y1 in changed:
            x0, y0 = max(x0 - x0 % 2, 0), max(y0 - y0 % 2, 0)
            x1, y1 = min(x1 + x1 % 2, luma.shape[1]), min(y1 + y1 % 2, luma.shape[0])
            if x0 < x1 and y0 < y1:
                self._convert(frame, x0, y0, x1, y1)

    def _convert(self, frame: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
        rgb = frame[y0:y1, x0:x1]
        short_h, short_w = y1 - y0 - rgb.shape[0], x1 - x0 - rgb.shape[1]
        if short_h or short_w:  # the canvas's padding to even sizes
            rgb = np.pad(rgb, ((0, short_h), (0, short_w), (0, 0)), mode="edge")
        rgb = np.ascontiguousarray(rgb)
        luma, cb, cr = self.planes
        luma[y0:y1, x0:x1] = cv2.transform(rgb, _LUMA)
        half = cv2.resize(rgb, ((x1 - x0) // 2, (y1 - y0) // 2), interpolation=cv2.INTER_AREA)  # 2x2 means
        chroma = cv2.transform(half, _CHROMA).reshape(half.shape[0], half.shape[1], 2)
        cb[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = chroma[..., 0]
        cr[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = chroma[..., 1]

    def video_frame(self) -> av.VideoFrame:
        """A new ``yuv420p`` frame holding a copy of the planes (tagged BT.709, limited range)."""
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, data in zip(frame.planes, self.planes):
            rows = np.frombuffer(plane, np.uint8)[: plane.height * plane.line_size].reshape(plane.height, -1)
            rows[:, : plane.width] = data[: plane.height, : plane.width]
        frame.colorspace = Colorspace.ITU709
        frame.color_range = ColorRange.MPEG
        return frame


def _quantized_frame(frame: np.ndarray) -> av.VideoFrame:
    """RGB array -> ``pal8`` frame with its own 256-colour median-cut palette (for GIF)."""
    quantized = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    colours = np.asarray(quantized.getpalette()[: 256 * 3], dtype=np.uint8).reshape(-1, 3)
    palette = np.zeros((256, 4), dtype=np.uint8)
    palette[:, 0] = 255  # opaque; PyAV takes ARGB
    palette[: len(colours), 1:] = colours
    return av.VideoFrame.from_ndarray((np.asarray(quantized, dtype=np.uint8), palette), format="pal8")
