"""The web app's files: one private folder per server, one per browser session.

The server's folder (mode 0700, :class:`Workspace`) is Gradio's upload and cache folder
(``GRADIO_TEMP_DIR``): uploads land in ``<root>/<content hash>/<name>``, the bundled
examples in ``<root>/examples``, each session's outputs in ``<root>/sessions/<random>``.
A handler only opens a file a browser names after :meth:`Session.upload` has checked it
is one of Gradio's own uploads inside the root (never any other server path), a regular
file under its size limit (media and checkpoints have their own: Gradio's one limit is set
to the larger, the handlers enforce each). When a session ends its folder and the uploads no other live
session uses are removed; when the server exits the whole root is.

User errors name the server's temporaries; :meth:`Session.public` puts back the names
the user knows (the upload's own file name).
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ReanimateError
from ..io import open_frames

#: ``reanimate ui``'s defaults
DEFAULT_UPLOAD_MB = 50.0
DEFAULT_VIDEO_SECONDS = 60.0
DEFAULT_CHECKPOINT_MB = 1024.0
MEGABYTE = 2**20
#: times a session's folder is removed again while a job still adds files to it
REMOVE_TRIES = 20


@dataclass(frozen=True)
class Limits:
    """What one upload may be: ``upload_mb`` megabytes (of 2**20 bytes, as Gradio's own
    message about the limit counts them), a video ``video_seconds`` long, a model
    checkpoint ``checkpoint_mb`` megabytes."""

    upload_mb: float = DEFAULT_UPLOAD_MB
    video_seconds: float = DEFAULT_VIDEO_SECONDS
    checkpoint_mb: float = DEFAULT_CHECKPOINT_MB

    def __post_init__(self):
        for option, value in (
            ("--max-upload-mb", self.upload_mb),
            ("--max-seconds", self.video_seconds),
            ("--max-checkpoint-mb", self.checkpoint_mb),
        ):
            if not value > 0:
                raise ReanimateError(f"{option} must be greater than 0, got {value:g}")

    @property
    def upload_bytes(self) -> int:
        return int(self.upload_mb * MEGABYTE)

    @property
    def largest_bytes(self) -> int:
        """The largest upload of any kind (Gradio's own limit, checked before a handler sees it)."""
        return int(max(self.upload_mb, self.checkpoint_mb) * MEGABYTE)

    def check_size(self, path: Path, size: int, checkpoint: bool = False) -> None:
        """One-line error when ``size`` bytes are over the limit of an upload's kind."""
        kind, mb = ("checkpoint", self.checkpoint_mb) if checkpoint else ("upload", self.upload_mb)
        if size > int(mb * MEGABYTE):
            raise ReanimateError(
                f"{path.name}: {size / MEGABYTE:.1f} MB, over this server's {kind} limit of {mb:g} MB "
                f"(reanimate ui --max-{kind}-mb)"
            )


@dataclass
class Session:
    """One browser session: its output ``folder``, the uploads it used (server path ->
    the user's file name), a lock that lets one job run at a time, and a cache for
    work done once per upload (the encoded source of an edit, an uploaded checkpoint's
    model) with the lock its models are ``loading`` under."""

    workspace: Workspace
    folder: Path
    names: dict[str, str] = field(default_factory=dict)
    job: threading.Lock = field(default_factory=threading.Lock)
    cache: dict = field(default_factory=dict)
    loading: threading.Lock = field(default_factory=threading.Lock)
    _count: itertools.count = field(default_factory=itertools.count)

    def upload(self, path: str | os.PathLike | None, what: str, checkpoint: bool = False) -> Path:
        """The upload at ``path`` (as Gradio hands it to a handler), checked: inside the
        server's folder, a regular file, within the size limit of media (``checkpoint``:
        of model checkpoints). ``what`` names the input for the message when there is none
        ("a source image"). An upload over its limit is still the session's: removed with it."""
        if path is None or str(path) == "":
            raise ReanimateError(f"no {what}: drop a file on it first")
        upload = self.workspace.checked_upload(Path(path))
        self.names[str(upload)] = upload.name
        self.names.setdefault(str(path), upload.name)
        self.workspace.limits.check_size(Path(path), upload.stat().st_size, checkpoint)
        return upload

    def output(self, stem: str, suffix: str) -> Path:
        """A fresh path in the session's folder, ``<stem>-<n><suffix>``."""
        return self.folder / f"{stem}-{next(self._count)}{suffix}"

    def public(self, text: str) -> str:
        """``text`` (an error's line, a note) with every server path in it replaced by the
        name the user knows."""
        return self.workspace.public(text, self.names)

    def check_duration(self, path: Path) -> None:
        """One-line error when the video at ``path`` is longer than the limit (read from
        its container; counted up to the limit when the container does not say)."""
        limit = self.workspace.limits.video_seconds
        with open_frames(path) as reader:
            if reader.frame_count is not None:
                seconds = reader.frame_count / reader.fps
            else:
                frames = sum(1 for _ in itertools.islice(reader, int(limit * reader.fps) + 1))
                seconds = frames / reader.fps
        if seconds > limit:
            raise ReanimateError(
                f"{path.name}: {seconds:.1f} s long, over this server's limit of {limit:g} s "
                "(reanimate ui --max-seconds); trim the video"
            )


class Workspace:
    """The server's private folder (see the module's docstring); a context manager that
    removes it on exit."""

    def __init__(self, root: Path, limits: Limits | None = None):
        self.root = Path(root).resolve()
        self.limits = limits or Limits()
        self.examples = self.root / "examples"
        self._sessions_root = self.root / "sessions"
        self._sessions_root.mkdir(mode=0o700, exist_ok=True)
        self.sessions: dict[str, Session] = {}
        self._ended: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def create(cls, limits: Limits | None = None, parent: str | os.PathLike | None = None) -> Workspace:
        """A new private folder (mode 0700) in ``parent`` (default: the system's temporary folder)."""
        return cls(Path(tempfile.mkdtemp(prefix="reanimate-ui-", dir=parent)), limits)

    def add_examples(self, *files: Path) -> list[Path]:
        """Copies of ``files`` in the examples folder (served by Gradio from there, never
        removed with a session); the files that exist."""
        self.examples.mkdir(mode=0o700, exist_ok=True)
        copies = []
        for file in files:
            if file.is_file():
                copies.append(Path(shutil.copy(file, self.examples / file.name)))
        return copies

    def session(self, session_id: str) -> Session:
        """The session ``session_id`` (Gradio's session hash), started on first use; an
        ended one is not started again (a request still under way when its page closed)."""
        with self._lock:
            if session_id in self._ended:
                raise ReanimateError("this page's session has ended; reload the page")
            if session_id not in self.sessions:
                folder = self._sessions_root / secrets.token_hex(8)
                folder.mkdir(mode=0o700)
                self.sessions[session_id] = Session(self, folder)
            return self.sessions[session_id]

    def end_session(self, session_id: str) -> None:
        """Remove the session's folder and the uploads it used that no other live
        session uses (the examples stay), and drop what it kept (its models)."""
        with self._lock:
            session = self.sessions.pop(session_id, None)
            self._ended.add(session_id)
            if session is None:
                return
            in_use = {name for other in self.sessions.values() for name in other.names}
        session.cache.clear()
        # A job still writing may add a file while the folder is being removed; once it
        # is gone, nothing can be written there.
        for _ in range(REMOVE_TRIES):
            shutil.rmtree(session.folder, ignore_errors=True)
            if not session.folder.exists():
                break
            time.sleep(0.05)
        for name in set(session.names) - in_use:
            folder = Path(name).parent
            # only Gradio's own upload folders (<root>/<hash>), not ours
            if folder.parent == self.root and folder not in (self.examples, self._sessions_root):
                shutil.rmtree(folder, ignore_errors=True)

    def checked_upload(self, path: Path) -> Path:
        """``path`` resolved, when it is an upload in this server's folder and a regular
        file (its size is :meth:`Limits.check_size`'s). Anything else is refused in one
        line, by the name alone (a path outside is never opened, nor shown)."""
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise ReanimateError(
                f"{path.name}: the upload is gone (the page was idle too long?); upload it again"
            ) from None
        if not resolved.is_relative_to(self.root) or resolved.is_relative_to(self._sessions_root):
            raise ReanimateError(f"{path.name}: not a file uploaded to this server; upload it through the page")
        if path.is_symlink() or not resolved.is_file():
            raise ReanimateError(f"{path.name}: not a regular file")
        return resolved

    def public(self, text: str, names: dict[str, str]) -> str:
        """``text`` with the server paths in ``names`` replaced by their names, then any
        other path into the server's folder by its last part."""
        for path in sorted(names, key=len, reverse=True):
            text = text.replace(path, names[path])
        return re.sub(re.escape(str(self.root)) + r"(/[^/\n]*)*/", "", text)

    def close(self) -> None:
        """End every session and remove the whole folder."""
        self.sessions.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
