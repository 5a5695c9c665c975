"""A live session: one portrait animated frame by frame by driving frames that arrive
one at a time (a webcam), each as soon as it comes.

The session is :meth:`AnimationPipeline.animate <reanimate.pipelines.animate.AnimationPipeline.animate>`
cut into steps: the same plan, source encoding, reference frame, driving crop, smoothing
and paste-back, so a session fed a video's frames gives the frames ``animate`` writes
for it. What differs is where the reference frame comes from: the first frame with a
face (and the first after :meth:`LiveSession.reset`), since a camera has no "best
frame" to look ahead for; and a frame without a face shows the last output again
rather than failing the whole run.

>>> with LiveSession(AnimationPipeline(build_animator()), portrait) as session:
...     for frame in camera:
...         show(session.step(frame))
"""

from __future__ import annotations

import os
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import ReanimateError
from ..faces import Face
from ..faces.steady import SteadyFaceMesh
from ..io.camera import CaptureThread, LatestFrame
from ..io.display import LiveOutput
from ..io.image import resize_area
from ..smoothing import make_smoother
from .animate import AnimationOptions, AnimationPipeline, check_options, paste_canvas

#: the driving frame rate a session's smoothing assumes unless told (a webcam's usual rate)
DEFAULT_LIVE_FPS = 25.0
#: what a driving frame's faces are before :meth:`LiveSession.step` has looked for them
_DETECT = object()
#: seconds between status lines of :func:`run_live`
STATUS_INTERVAL = 1.0
#: longest wait for a frame before the outputs' events are handled again (a window
#: stays responsive while the camera is slow)
POLL_SECONDS = 0.05


class LiveSession:
    """One portrait, animated one driving frame at a time.

    Args:
        pipeline: the animator and its plan (``animate``'s).
        source_image: ``(H, W, 3)`` uint8 RGB, the portrait.
        options: as ``animate``'s (retargeting, smoothing, face choice, crop and
            paste-back); those that look ahead in a driving video (``best_frame``,
            ``find_best_frame``) or change the output's kind (``visualize``) are refused.
        source_name: how errors about the source name it (a user's file name, not a
            temporary path).
        size: the longer side of the output frames; None: the source's own size (with
            paste-back) or the animator's (without). With paste-back the source is scaled
            once, before its face is encoded, so a large photo costs no more per frame
            than a small one.
        fps: the driving frames' rate, for the smoothing filters' time constants.

    Raises:
        InputError: the source has no face (named ``source_name``), as ``animate``'s.
        ReanimateError: options that do not fit the animator or a live session.

    Attributes:
        face_found: whether the last :meth:`step`'s frame had a face (always True for a
            plan that looks for no faces in driving frames).
        notes: what ``animate`` would print as notes about the source (several faces...).
    """

    def __init__(
        self,
        pipeline: AnimationPipeline,
        source_image: np.ndarray,
        options: AnimationOptions | None = None,
        *,
        source_name: str = "source",
        size: int | None = 512,
        fps: float = DEFAULT_LIVE_FPS,
    ):
        options = options or AnimationOptions()
        check_live_options(options, size)
        self.pipeline = pipeline
        self.options = options
        self.plan = pipeline.plan(options)
        self.notes: list[str] = list(pipeline.animator.notes)
        image = np.array(scaled_to(source_image, size) if self.plan.paste else source_image, copy=True)
        self.faces = pipeline.encode_faces(image, source_name, options, self.plan, self.notes)
        self.size = size
        # The source is the canvas: outside the face boxes no output frame changes.
        self._canvas = paste_canvas(image, self.faces) if self.plan.paste else None
        self._last = image.copy() if self.plan.paste else scaled_to(self.faces[0].source.image, size)
        self._mesh = SteadyFaceMesh() if self.plan.driving_box else None  # (as animate reads driving frames)
        self._smoother = make_smoother(options.smooth, fps)
        self._box = self._reference = self._shape = None
        self.face_found = False

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """``(H', W', 3)`` of every frame :meth:`step` returns."""
        return self._last.shape

    def detect(self, frame: np.ndarray) -> list[Face] | None:
        """The faces :meth:`step` looks for in a driving ``frame`` ``(h, w, 3)`` uint8, largest
        first (None when the plan looks for none). To overlap one frame's detection with
        the previous frame's rendering, call this in one thread and hand its result to
        :meth:`step` in another (never two detections at once)."""
        if self._mesh is None:
            return None
        return self._mesh.detect(frame)

    def step(self, frame: np.ndarray, faces=_DETECT) -> np.ndarray:
        """One driving frame ``(h, w, 3)`` uint8 RGB -> the animated portrait ``(H', W', 3)``
        uint8 (:attr:`output_shape`, a new array). ``faces``: :meth:`detect`'s result for
        this frame, when already known.

        The first frame with a face is the reference of relative motion (as is the
        first after :meth:`reset`, or after the frames' size changes). A frame without a
        face gives the last output again (the source before any face)."""
        frame = np.asarray(frame)
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3, (
            f"expected a uint8 (h, w, 3) RGB frame, got {frame.dtype} {frame.shape}"
        )
        if faces is _DETECT:
            faces = self.detect(frame)
        self.face_found = self._mesh is None or bool(faces)
        if not self.face_found:
            return self._last.copy()
        face = faces[0] if faces else None
        if self._shape != frame.shape:
            self._box, self._reference = self.pipeline.reference_at(frame, face, self.options, self.plan)
            self._shape = frame.shape
            if self._smoother is not None:
                self._smoother.reset()
        landmarks = None if face is None else face.landmarks[None]
        batch = self.pipeline.driving_batch([frame], self._box, landmarks, self.options)
        _, _, rendered = self.pipeline.drive(self.faces, batch, self._reference, self.plan.transfer, self._smoother)
        if self._canvas is not None:
            self._last = self._canvas.paste([r.frames[0] for r in rendered]).copy()
        else:
            self._last = scaled_to(rendered[0].frames[0], self.size)
        return self._last.copy()

    def reset(self) -> None:
        """Take the next frame with a face as the reference of relative motion (the
        person moved, or another person drives); the face is then found afresh."""
        self._shape = None
        if self._mesh is not None:
            self._mesh.reset()

    def close(self) -> None:
        """Release MediaPipe's graph. Idempotent."""
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def default_threads(cores: int | None = None) -> int:
    """Torch's threads for a live session on ``cores`` CPU cores (None: this machine's):
    half of them. The capture thread, MediaPipe and the outputs need the rest, and
    torch's idle threads spin: on 2 cores (``benchmarks/live_speed.py``, a 30 frames/s
    camera) 1 thread kept up at 28.7 frames/s and 31 ms median latency where 2 threads
    gave 20 frames/s and 64 ms."""
    return max(1, (cores or os.cpu_count() or 1) // 2)


def check_live_options(options: AnimationOptions, size: int | None) -> None:
    """One-line errors for ``animate``'s options that a live session cannot honour, and
    for a bad output ``size``."""
    check_options(options)
    if options.find_best_frame or options.best_frame is not None:
        option = "--find-best-frame" if options.find_best_frame else "--best-frame"
        raise ReanimateError(f"{option}: a live session's reference is its first frame with a face")
    if options.visualize:
        raise ReanimateError("--visualize: a live session shows the animated portrait only")
    if size is not None and (isinstance(size, bool) or int(size) != size or size < 16):
        raise ReanimateError(f"--size {size}: expected a whole number of pixels, at least 16")


def scaled_to(image: np.ndarray, size: int | None) -> np.ndarray:
    """``image`` ``(H, W, C)`` resized so that its longer side is ``size`` (the aspect
    ratio kept, sides rounded); as is for None or when it already is."""
    if size is None:
        return image
    height, width = image.shape[:2]
    scale = size / max(height, width)
    return resize_area(image, max(1, round(height * scale)), max(1, round(width * scale)))


@dataclass
class LiveStats:
    """What a live run did.

    Attributes:
        shown: frames animated and handed to the outputs.
        dropped: captured frames never animated (a newer one came first).
        no_face: shown frames whose driving frame had no face (the last output again).
        seconds: wall time from the first frame taken to the last shown.
        latencies: seconds from each shown frame's capture to its output being ready.
        interrupted: the run was ended by Ctrl-C.
    """

    shown: int = 0
    dropped: int = 0
    no_face: int = 0
    seconds: float = 0.0
    latencies: array = field(default_factory=lambda: array("d"))
    interrupted: bool = False

    @property
    def frames_per_second(self) -> float:
        return (self.shown - 1) / self.seconds if self.shown > 1 and self.seconds > 0 else 0.0

    def latency_ms(self, percentile: float, since: int = 0) -> float:
        """The ``percentile`` (0-100) of the latencies of shown frames ``since`` on, in ms."""
        recent = np.frombuffer(self.latencies, np.float64)[since:]
        return 1000 * float(np.percentile(recent, percentile)) if len(recent) else float("nan")

    def summary(self) -> str:
        """One line: frames shown, dropped, frames/s, median and 95th-percentile latency."""
        if not self.shown:
            return f"no frames shown, {self.dropped} dropped"
        return (
            f"{self.shown} frames shown, {self.dropped} dropped, {self.frames_per_second:.1f} frames/s, "
            f"latency median {self.latency_ms(50):.0f} ms, 95th percentile {self.latency_ms(95):.0f} ms"
            + (f", {self.no_face} without a face" if self.no_face else "")
        )


class _Detector:
    """A live session's face detection in a thread of its own: it takes the newest
    captured frame, detects its faces and holds ``(Captured, faces)`` in :attr:`detected`,
    while the caller renders the frame before (MediaPipe and torch release the GIL).
    It waits for each result to be taken before the next frame, so it detects the
    newest frame when one is wanted and spends no time on frames that would be dropped."""

    def __init__(self, session: LiveSession, frames: LatestFrame):
        self.session = session
        self.frames = frames
        self.detected = LatestFrame()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="detect", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = self.frames.take(POLL_SECONDS)
                if item is None:
                    if self.frames.closed:
                        return
                    continue
                self.detected.put((item, self.session.detect(item.frame)))
                while not self._stop.is_set() and not self.detected.wait_taken(POLL_SECONDS):
                    pass
        except BaseException as exc:  # raised again by run_live in its thread
            self.error = exc
        finally:
            self.detected.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_live(
    session: LiveSession,
    capture: CaptureThread,
    outputs: list[LiveOutput],
    *,
    max_frames: int | None = None,
    max_seconds: float | None = None,
    on_status: Callable[[str], None] | None = None,
    overlap: bool = False,
) -> LiveStats:
    """Animate the frames of a started ``capture`` with ``session`` into ``outputs`` until
    the input ends, ``max_frames`` have been shown, ``max_seconds`` have passed, an output
    is closed (the window) or Ctrl-C (a clean end: :attr:`LiveStats.interrupted`).

    Each step takes the newest frame captured (older ones are dropped), so the latency
    stays bounded however slow the animator is. With ``overlap`` the next frame's face
    is found in another thread while the current one renders: more frames/s when
    detection is a large part of a step, but each frame then waits for the render
    before it, about one render longer (``benchmarks/live_speed.py``: with the default
    animator on 2 cores, detection is a fifth of a step and one after the other already
    keeps up with a 30 frames/s camera, so it is off by default). About once a second a
    status line (frames/s and median latency over that second) goes to ``on_status`` and
    every output's :meth:`~reanimate.io.display.LiveOutput.status`.

    Raises what the input raised (a corrupt video file) once the loop has stopped.
    """
    detector = _Detector(session, capture.latest) if overlap else None
    source = detector.detected if detector else capture.latest
    stats = LiveStats()
    start = last_status = None
    status_from = 0
    try:
        while max_frames is None or stats.shown < max_frames:
            item = source.take(POLL_SECONDS)
            if not all([output.poll() for output in outputs]):
                break
            now = time.perf_counter()
            if start is None and item is not None:
                start = last_status = now
            if start is not None and max_seconds is not None and now - start >= max_seconds:
                break
            if item is None:
                if source.closed:
                    break
                continue
            captured, faces = item if detector else (item, None)
            out = session.step(captured.frame, faces) if detector else session.step(captured.frame)
            ready = time.perf_counter()
            stats.latencies.append(ready - captured.time)
            stats.shown += 1
            stats.no_face += not session.face_found
            stats.seconds = ready - start
            for output in outputs:
                output.show(out, captured.time)
            if ready - last_status >= STATUS_INTERVAL:
                shown = stats.shown - status_from
                line = (
                    f"{shown / (ready - last_status):.1f} frames/s, latency {stats.latency_ms(50, status_from):.0f} ms"
                    + ("" if session.face_found else ", no face")
                )
                for output in outputs:
                    output.status(line)
                if on_status is not None:
                    on_status(line)
                last_status, status_from = ready, stats.shown
    except KeyboardInterrupt as exc:
        if type(exc) is not KeyboardInterrupt:  # SIGTERM and the like unwind as errors
            raise
        stats.interrupted = True
    finally:
        if detector is not None:
            detector.stop()
    stats.dropped = capture.latest.dropped + (detector.detected.dropped if detector else 0)
    for failed in (capture.error, detector and detector.error):
        if failed is not None:
            raise failed
    return stats
