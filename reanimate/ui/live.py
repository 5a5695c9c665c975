"""The Live tab: webcam frames streamed from the browser drive a portrait through a
:class:`~reanimate.pipelines.live.LiveSession`, one per browser session (its own
pipeline, so that it never waits for another tab's job), with frames/s and latency.

Each animated frame is written to the session's folder (a short ring of JPEGs, the
oldest removed), which Gradio serves as it is: returning arrays would leave one cached
file per frame in Gradio's folder until the server exits.
"""

from __future__ import annotations

import collections
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import read_image, write_image
from ..pipelines.animate import build_pipeline
from ..pipelines.live import LiveSession
from .files import Session
from .jobs import Models, Outcome, guarded

#: output frames kept on disk per session (the browser may still be fetching the last few)
RING = 6
#: frames the frames/s and latency figures are taken over
WINDOW = 30
#: longest side of the animated frames
LIVE_SIZE = 384


@dataclass
class LiveState:
    """A session's live animation: what it was made for (model, portrait), the session
    itself, the arrival times and processing times of the last :data:`WINDOW` frames,
    and the output files on disk."""

    key: tuple[str, str]
    live: LiveSession
    arrivals: collections.deque = field(default_factory=lambda: collections.deque(maxlen=WINDOW))
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=WINDOW))
    files: collections.deque = field(default_factory=collections.deque)

    def stats(self) -> str:
        """``"12.5 frames/s, 38 ms per frame (median of the last 30)"``; frames/s is
        measured over the frames' arrivals, latency from arrival to the written frame."""
        rate = 0.0
        if len(self.arrivals) > 1 and self.arrivals[-1] > self.arrivals[0]:
            rate = (len(self.arrivals) - 1) / (self.arrivals[-1] - self.arrivals[0])
        latency = 1000 * statistics.median(self.latencies)
        face = "" if self.live.face_found else "; no face in the camera's frame"
        return f"{rate:.1f} frames/s, {latency:.0f} ms per frame on the server (median of {len(self.latencies)}){face}"


def step(models: Models, session: Session, label: str, portrait, frame: np.ndarray | None) -> tuple[Path | None, str]:
    """One webcam ``frame`` ``(h, w, 3)`` uint8 -> the animated portrait's file and the
    status line (frames/s and latency, or an error line)."""
    if frame is None:
        return None, ""
    if portrait in (None, ""):
        return None, "drop a portrait on the left first"
    arrived = time.perf_counter()

    def work() -> Outcome:
        upload = session.upload(portrait, "portrait")
        state = session.cache.get("live")
        key = (label, str(upload))
        if state is None or state.key != key:
            close(session)
            if label not in models.files:
                models.get(label)  # its one-line error
            pipeline = build_pipeline(models.files[label], device=models.device)
            live = LiveSession(pipeline, read_image(upload), source_name=upload.name, size=LIVE_SIZE)
            state = session.cache["live"] = LiveState(key, live)
        animated = state.live.step(np.ascontiguousarray(frame[..., :3], dtype=np.uint8))
        output = write_image(session.output("live", ".jpg"), animated)
        state.files.append(output)
        while len(state.files) > RING:
            state.files.popleft().unlink(missing_ok=True)
        state.arrivals.append(arrived)
        state.latencies.append(time.perf_counter() - arrived)
        return Outcome(state.stats(), image=output)

    out = guarded(session, work)
    return out.image, out.status


def reset(session: Session) -> None:
    """The next camera frame with a face becomes the reference of relative motion."""
    state = session.cache.get("live")
    if state is not None:
        state.live.reset()


def close(session: Session | None) -> None:
    """Release the session's live animation, if any."""
    state = None if session is None else session.cache.pop("live", None)
    if state is not None:
        state.live.close()
