"""The Live tab: the browser's webcam drives a portrait through a
:class:`~reanimate.pipelines.live.LiveSession`, one per browser session (its own
pipeline, so that it never waits for another tab's job).

The page's camera loop (``live.js``, in a ``gr.HTML``) posts one JPEG frame at a time
to :data:`FRAME_ROUTE` and draws the next only once the animated frame has come back and
is shown: frames the camera makes meanwhile are dropped, so the latency stays one round
trip however slow the server is. The route knows the session by an unguessable token the
page got when it loaded (:meth:`LiveFrames.token`), never by a path from the browser: the
portrait and model chosen (:meth:`LiveFrames.bind`) and the session's ``LiveSession`` stay
on the server. The
page measures the round trip itself (``performance.now()``, from drawing the camera's
frame to showing the animated one); the server's share comes in a header.

Frames come and go in the request and the answer: nothing is written to disk.
"""

from __future__ import annotations

import io
import secrets
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import ReanimateError
from ..io import read_image
from ..pipelines.animate import build_pipeline
from ..pipelines.live import LiveSession
from .files import MEGABYTE, Session, Workspace
from .jobs import UNEXPECTED, Models, Outcome, guarded

#: where the page posts camera frames (a path relative to the page)
FRAME_ROUTE = "reanimate/live"
#: the request's header naming the session
TOKEN_HEADER = "X-Reanimate-Token"
#: the answer's headers: the server's milliseconds for the frame, whether it had a face
SERVER_MS_HEADER = "X-Reanimate-Server-Ms"
FACE_HEADER = "X-Reanimate-Face"
#: longest side of the animated frames
LIVE_SIZE = 384
#: longest side of a camera frame the route decodes
MAX_FRAME_SIDE = 1920
#: the animated frames' JPEG quality
JPEG_QUALITY = 90
#: what the route reads from a camera frame
FRAME_FORMATS = ("JPEG", "PNG", "WEBP")


@dataclass
class LiveState:
    """A session's live animation and the lock its frames take turns under (``closed``
    once another portrait or model replaced it)."""

    live: LiveSession
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.live.close()


@dataclass(frozen=True)
class Reply:
    """The route's answer: an HTTP ``status``, a JPEG (200) or an ``error: …`` line."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def media_type(self) -> str:
        return "image/jpeg" if self.status == 200 else "text/plain; charset=utf-8"

    @classmethod
    def error(cls, status: int, line: str) -> Reply:
        return cls(status, line.encode())


class LiveFrames:
    """The Live tab's server side for the sessions of ``workspace``: tokens, each
    session's :class:`LiveState`, and the camera frames posted to the route. Frames of
    several pages take turns (one rendered at a time, as one job of a tab is)."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self._tokens: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._render = threading.Lock()

    def token(self, session: Session) -> str:
        """The session's token (made on first use): what the page sends with its frames."""
        with self._lock:
            if "live-token" not in session.cache:
                token = secrets.token_urlsafe(32)
                self._tokens[token] = session
                session.cache["live-token"] = token
            return session.cache["live-token"]

    def bind(self, models: Models, session: Session, label: str, portrait) -> str:
        """Animate the uploaded ``portrait`` with the model ``label`` from now on (the
        source encoded at once, so that its errors show before the camera starts; None:
        nothing). A status line: empty, notes, or the error."""
        release(session)
        if portrait in (None, ""):
            return ""

        def work() -> Outcome:
            upload = session.upload(portrait, "portrait")
            if label not in models.files:
                models.get(label)  # its one-line error
            pipeline = build_pipeline(models.files[label], device=models.device)
            live = LiveSession(pipeline, read_image(upload), source_name=upload.name, size=LIVE_SIZE)
            release(session)  # (a bind of another page event may have come meanwhile)
            session.cache["live"] = LiveState(live)
            return Outcome("\n".join(f"note: {session.public(note)}" for note in live.notes))

        return guarded(session, work).status

    def frame(self, token: str | None, data: bytes) -> Reply:
        """One camera frame (JPEG, PNG or WebP ``data``) of the session ``token`` names ->
        the animated portrait as a JPEG, :data:`LIVE_SIZE` on its longer side, with the
        server's time and whether the frame had a face in headers; or a refusal."""
        started = time.perf_counter()
        session = self._tokens.get(token or "")
        if session is None:
            return Reply.error(403, "error: this page's live session is not on the server (ended?); reload the page")
        animated: bytes = b""
        face = False

        def work() -> Outcome:
            nonlocal animated, face
            frame = decode_frame(data, session.workspace.limits.upload_bytes)
            with self._render:
                while not animated:  # (a state replaced while this frame waited: the new one takes it)
                    state = self._state(session)
                    with state.lock:
                        if not state.closed:
                            animated = encode_jpeg(state.live.step(frame))
                            face = state.live.face_found
            return Outcome("")

        out = guarded(session, work)
        if not animated:
            return Reply.error(500 if out.status == UNEXPECTED else 422, out.status)
        seconds = time.perf_counter() - started
        return Reply(200, animated, {SERVER_MS_HEADER: f"{1000 * seconds:.1f}", FACE_HEADER: str(int(face))})

    @staticmethod
    def _state(session: Session) -> LiveState:
        state = session.cache.get("live")
        if state is None:
            raise ReanimateError("no portrait to animate: drop one on the left (its status says why, if it failed)")
        return state

    def end(self, session: Session | None) -> None:
        """The session's page closed: its live animation released, its token forgotten."""
        if session is None:
            return
        release(session)
        with self._lock:
            self._tokens.pop(session.cache.pop("live-token", ""), None)


def decode_frame(data: bytes, limit: int) -> np.ndarray:
    """A posted camera frame ``(h, w, 3)`` uint8 RGB; one-line errors for one over
    ``limit`` bytes, larger than :data:`MAX_FRAME_SIDE`, or not a picture."""
    if len(data) > limit:
        raise ReanimateError(
            f"the camera's frame is over this server's upload limit of {limit / MEGABYTE:g} MB "
            "(reanimate ui --max-upload-mb)"
        )
    unreadable = ReanimateError("the camera's frame is not a JPEG, PNG or WebP picture")
    try:
        image = Image.open(io.BytesIO(data), formats=FRAME_FORMATS)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise unreadable from None
    with image:
        if max(image.size) > MAX_FRAME_SIDE:
            raise ReanimateError(
                f"the camera's frame is {image.width}x{image.height}, over {MAX_FRAME_SIDE} pixels on a side"
            )
        try:
            return np.asarray(image.convert("RGB"))
        except (OSError, SyntaxError, ValueError):
            raise unreadable from None


def encode_jpeg(frame: np.ndarray) -> bytes:
    """``frame`` ``(H, W, 3)`` uint8 RGB as JPEG bytes."""
    out = io.BytesIO()
    Image.fromarray(frame).save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def release(session: Session) -> None:
    """Release the session's live animation, if any (its token stays)."""
    state = session.cache.pop("live", None)
    if state is not None:
        state.close()


def reset(session: Session) -> None:
    """The next camera frame with a face becomes the reference of relative motion."""
    state = session.cache.get("live")
    if state is not None:
        state.live.reset()


def frame_route(frames: LiveFrames):
    """The Starlette route of :data:`FRAME_ROUTE` (``POST``, the frame as the body, the
    token in :data:`TOKEN_HEADER`) for the app's ``routes``. The body is read up to one
    byte over the upload limit; the work runs in a worker thread."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response
    from starlette.routing import Route

    async def post(request) -> Response:
        limit = frames.workspace.limits.upload_bytes
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                break
        reply = await run_in_threadpool(frames.frame, request.headers.get(TOKEN_HEADER), bytes(body))
        headers = {"Cache-Control": "no-store", **reply.headers}
        return Response(reply.body, reply.status, headers, reply.media_type)

    return Route(f"/{FRAME_ROUTE}", post, methods=["POST"])
