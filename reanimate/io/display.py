"""Live outputs: where the frames of a live session go as they are made.

* :class:`Window`: a tkinter window (the standard library's; OpenCV's headless build has
  no GUI), its title showing frames/s and latency; ``r`` resets, ``q`` or Esc closes.
* :class:`VirtualCamera`: a virtual camera device via ``pyvirtualcam`` (the ``live``
  extra), which video-call apps can pick as their camera.
* :class:`Recording`: a video file on the capture timeline (atomic, via
  :func:`~reanimate.io.open_writer`): a dropped frame's slot shows the next output, so
  the recording lasts as long as the capture did.

Each is a :class:`LiveOutput`; frames are ``uint8 (H, W, 3)`` RGB.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ..errors import ReanimateError
from .writing import open_writer

#: what the window shows before the first frame's size is known
WINDOW_TITLE = "reanimate live"


class LiveOutput:
    """Where live frames go; every method may be left as is. A context manager: leaving
    it closes the output (``failed`` when an exception leaves)."""

    def show(self, frame: np.ndarray, captured_at: float) -> None:
        """One output frame, made from the frame captured at ``captured_at``
        (``time.perf_counter()``)."""

    def status(self, text: str) -> None:
        """A new status line (about once a second)."""

    def poll(self) -> bool:
        """Handle pending events; False once the user closed this output."""
        return True

    def close(self, failed: bool = False) -> None:
        """Release the output: finish it (publish a recording), or after a failure
        discard what it made."""

    def __enter__(self) -> LiveOutput:
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        self.close(failed=exc_type is not None)


class Window(LiveOutput):
    """A tkinter window showing each frame.

    Args:
        on_key: functions called (in the caller's thread, from :meth:`poll` or
            :meth:`show`) when a key is pressed, by ``event.keysym`` (``"r"``...).

    Raises:
        ReanimateError: no display (``$DISPLAY`` unset or unreachable) or no tkinter.
    """

    def __init__(self, on_key: dict[str, Callable[[], None]] | None = None):
        try:
            import tkinter
        except ImportError:
            raise ReanimateError("the window needs tkinter (python3-tk); use --no-window") from None
        try:
            self._root = tkinter.Tk()
        except tkinter.TclError:
            where = os.environ.get("DISPLAY")
            why = f"cannot open display {where}" if where else "no display ($DISPLAY is not set)"
            raise ReanimateError(f"{why}: use --no-window with --output or --virtual-camera") from None
        self._tk = tkinter
        self._root.title(WINDOW_TITLE)
        self._label = tkinter.Label(self._root, bd=0)
        self._label.pack()
        self._image = None
        self._open = True
        #: what each key does (by ``event.keysym``); may be changed at any time
        self.keys = {"q": self.close, "Escape": self.close, **(on_key or {})}
        self._root.bind("<Key>", self._key)
        self._root.protocol("WM_DELETE_WINDOW", self.close)

    def _key(self, event) -> None:
        if event.keysym in self.keys:
            self.keys[event.keysym]()

    def show(self, frame: np.ndarray, captured_at: float) -> None:
        if not self._open:
            return
        height, width = frame.shape[:2]
        # A binary PPM: tkinter's PhotoImage reads it without Pillow's ImageTk.
        ppm = b"P6 %d %d 255\n" % (width, height) + np.ascontiguousarray(frame).tobytes()
        self._image = self._tk.PhotoImage(data=ppm, format="PPM")
        self._label.configure(image=self._image)
        self.poll()

    def status(self, text: str) -> None:
        if self._open:
            self._root.title(f"{WINDOW_TITLE}: {text}")

    def poll(self) -> bool:
        if self._open:
            try:
                self._root.update()
            except self._tk.TclError:  # destroyed under us
                self._open = False
        return self._open

    def close(self, failed: bool = False) -> None:
        if self._open:
            self._open = False
            self._root.destroy()


class VirtualCamera(LiveOutput):
    """A virtual camera of ``width`` x ``height`` at ``fps`` (pyvirtualcam: v4l2loopback
    on Linux, OBS's on Windows and macOS).

    Raises:
        ReanimateError: pyvirtualcam is not installed, or it finds no virtual camera device.
    """

    def __init__(self, width: int, height: int, fps: float):
        pyvirtualcam = require_pyvirtualcam()
        try:
            self._camera = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB)
        except (RuntimeError, ValueError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ReanimateError(f"--virtual-camera: {reason}") from None
        self.device = self._camera.device

    def show(self, frame: np.ndarray, captured_at: float) -> None:
        self._camera.send(np.ascontiguousarray(frame))

    def close(self, failed: bool = False) -> None:
        self._camera.close()


class Recording(LiveOutput):
    """The output frames as a video at ``fps``, each in the slot of its capture time
    counted from the first frame's (a slot left empty by dropped frames takes the next
    output; two outputs for one slot keep the first). Written atomically: a failed
    :meth:`close`, or one with nothing recorded, leaves nothing at ``path``.

    Attributes:
        frames: frames written so far (slots filled).
    """

    def __init__(self, path: str | os.PathLike, fps: float):
        self._writer = open_writer(path, fps)
        self.path = self._writer.path
        self.fps = fps
        self.start: float | None = None
        self.frames = 0

    def show(self, frame: np.ndarray, captured_at: float) -> None:
        if self.start is None:
            self.start = captured_at
        slot = round((captured_at - self.start) * self.fps)
        for _ in range(slot + 1 - self.frames):
            self._writer.write(frame)
            self.frames += 1

    def close(self, failed: bool = False) -> None:
        if self.frames and not failed:
            self._writer.close()
        else:
            self._writer.abort()


def require_pyvirtualcam():
    """The ``pyvirtualcam`` module, or a one-line :class:`ReanimateError` saying how to get it."""
    try:
        import pyvirtualcam
    except ImportError:
        raise ReanimateError(
            "--virtual-camera needs pyvirtualcam: pip install 'reanimate[live]' (and a virtual camera "
            "device: v4l2loopback on Linux, OBS on Windows and macOS)"
        ) from None
    return pyvirtualcam
