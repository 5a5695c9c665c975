"""User-facing errors.

A :class:`ReanimateError` carries one line that names the input and the problem;
the CLI prints it on stderr and exits non-zero without a traceback.
"""

from __future__ import annotations

import os


class ReanimateError(Exception):
    """An error caused by user input (a file, an option), reported as one line."""


class InputError(ReanimateError):
    """A file given by the user is missing, unreadable, corrupt or of the wrong kind."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{self.path}: {problem}")


class CheckpointError(InputError):
    """A checkpoint does not match the model configuration or is not a checkpoint."""


class OutputError(InputError):
    """An output path given by the user cannot be written: its folder is missing or
    read-only, it is in the way (an existing folder, a non-empty frame folder), or writing
    failed (disk full). A subclass of :class:`InputError`, which earlier versions raised."""
