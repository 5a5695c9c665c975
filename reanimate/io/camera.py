"""Live input: frames from a camera (or a video file played as one) in a thread of
their own, handed on newest-first.

A consumer slower than the camera must not fall further and further behind: the
capture thread puts every frame into a one-slot :class:`LatestFrame`, which keeps only
the newest and counts the ones replaced before anybody took them (dropped). The
consumer always takes the newest, so the age of what it works on stays below one
capture interval plus its own time per frame, however slow it is.

Frames are ``uint8 (H, W, 3)`` RGB arrays; each comes with the ``time.perf_counter()``
at which it was captured (for a video file: when it was due), so that latency can be
measured from capture to output.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, ReanimateError
from .files import is_video_path
from .reading import open_frames

log = logging.getLogger(__name__)

#: frames per second assumed for a camera that does not report its rate
DEFAULT_CAMERA_FPS = 30.0


@dataclass(frozen=True)
class Captured:
    """One captured frame: ``frame`` ``(H, W, 3)`` uint8 RGB, its number in the capture
    order (``index``, from 0) and the ``time.perf_counter()`` of its capture."""

    frame: np.ndarray
    index: int
    time: float


class LatestFrame:
    """A one-slot holder between a producer thread and a consumer: :meth:`put` replaces
    what is there, :meth:`take` waits for something new and empties the slot. Items are
    anything (:class:`Captured` from a :class:`CaptureThread`).

    Attributes:
        put_count: frames put so far.
        dropped: frames replaced by a newer one before they were taken.
        closed: no more frames will come (:meth:`close`).
    """

    def __init__(self):
        self._ready = threading.Condition()
        self._item = None
        self.put_count = 0
        self.dropped = 0
        self.closed = False

    def put(self, item) -> None:
        """Hold ``item`` (the newest); the one held before, if not taken, is dropped."""
        with self._ready:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.put_count += 1
            self._ready.notify_all()

    def take(self, timeout: float | None = None):
        """The newest item not yet taken, waiting up to ``timeout`` seconds (None: until
        one comes) for one; None when the holder is closed and empty, or on timeout."""
        with self._ready:
            self._ready.wait_for(lambda: self._item is not None or self.closed, timeout)
            item, self._item = self._item, None
            self._ready.notify_all()
            return item

    def wait_taken(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds until the slot is empty (what was put is taken);
        whether it is. A producer that waits for this before making the next item makes
        each one when it is wanted, and none in vain."""
        with self._ready:
            return self._ready.wait_for(lambda: self._item is None, timeout)

    def close(self) -> None:
        """No more :meth:`put`: :meth:`take` returns what is left, then None."""
        with self._ready:
            self.closed = True
            self._ready.notify_all()


class CameraInput:
    """An OpenCV camera: a device index (``0`` = the first camera) or a device path
    (``/dev/video2``). Frames as the device delivers them, converted to RGB.

    Raises:
        InputError: no such device, or it cannot be opened or read.
    """

    def __init__(self, device: int | str):
        self.name = f"camera {device}" if isinstance(device, int) else str(device)
        if isinstance(device, str) and not Path(device).exists():
            raise InputError(device, "not found (give a camera index, a device such as /dev/video0, or --video FILE)")
        with _quiet_opencv():
            capture = cv2.VideoCapture(device)
            opened = capture.isOpened()
            ok, first = capture.read() if opened else (False, None)
        if not ok:
            capture.release()
            why = "gives no frames" if opened else "cannot be opened (no such camera, or it is in use)"
            raise InputError(self.name, why)
        # Drivers queue a few frames; a reader that keeps up needs one, and any more are latency.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._capture = capture
        self._first: np.ndarray | None = first
        rate = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(rate) if 1 <= rate <= 240 else DEFAULT_CAMERA_FPS
        self.size = (first.shape[1], first.shape[0])

    def frames(self, stop: threading.Event) -> Iterator[tuple[np.ndarray, float]]:
        """``(frame, capture time)`` until ``stop`` is set or the device stops giving frames."""
        if self._first is not None:
            first, self._first = self._first, None
            yield cv2.cvtColor(first, cv2.COLOR_BGR2RGB), time.perf_counter()
        while not stop.is_set():
            ok, frame = self._capture.read()
            if not ok:
                log.warning("%s: stopped giving frames", self.name)
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), time.perf_counter()

    def close(self) -> None:
        self._capture.release()


class VideoInput:
    """A video file played as a camera: each frame given when it is due at the file's
    own rate (from the first frame on), so a consumer meets it as it would a camera;
    ``loop`` starts again at the end.

    Raises:
        InputError: as :func:`~reanimate.io.open_frames` (missing, corrupt, no frames).
    """

    def __init__(self, path: str | os.PathLike, loop: bool = False):
        if not is_video_path(path) and not Path(path).is_dir():
            raise InputError(path, "not a video file (for a camera device give --camera)")
        self.reader = open_frames(path)
        self.name = str(path)
        self.fps = self.reader.fps
        self.size = self.reader.size
        self.loop = loop

    def frames(self, stop: threading.Event) -> Iterator[tuple[np.ndarray, float]]:
        start = time.perf_counter()
        interval = 1.0 / self.fps
        due = (start + n * interval for n in itertools.count())
        for _ in itertools.count() if self.loop else range(1):
            for frame in self.reader:
                when = next(due)
                if stop.wait(max(0.0, when - time.perf_counter())):
                    return
                yield frame, when

    def close(self) -> None:
        self.reader.close()


def open_input(camera: int | str | None = None, video: str | os.PathLike | None = None, loop: bool = False):
    """A :class:`CameraInput` (``camera``: an index, or a device path) or a
    :class:`VideoInput` (``video``); exactly one of them."""
    if (camera is None) == (video is None):
        raise ReanimateError("give a camera (--camera N or a device path) or a video file (--video), not both")
    if video is not None:
        return VideoInput(video, loop)
    return CameraInput(camera)


def parse_camera(text: str) -> int | str:
    """``"0"`` -> 0 (a device index); anything else is a device path."""
    return int(text) if text.strip().isdigit() else text


class CaptureThread:
    """Runs an input (:class:`CameraInput` or :class:`VideoInput`) in a daemon thread
    into :attr:`latest` (:class:`LatestFrame`), which is closed when the input ends or
    fails (the failure is kept in :attr:`error`). A context manager: leaving it stops
    the thread and closes the input."""

    def __init__(self, source):
        self.source = source
        self.latest = LatestFrame()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> CaptureThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for index, (frame, when) in enumerate(self.source.frames(self._stop)):
                self.latest.put(Captured(frame, index, when))
        except BaseException as exc:  # handed to the consumer, which raises it in its thread
            self.error = exc
        finally:
            self.latest.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.source.close()

    def __enter__(self) -> CaptureThread:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


@contextlib.contextmanager
def _quiet_opencv():
    """OpenCV's warnings (a camera it cannot open) off: the caller says it in one line."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)
