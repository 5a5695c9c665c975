"""Paths and files: which files a frame folder holds, and atomic writes.

Atomic writes go to a hidden temporary sibling (``.{name}.partial-{random}``), flushed
to disk, then renamed over the target, so a reader never sees half a file and a failure
leaves the old one (and no temporary) behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from reanimate.errors import InputError

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".gif", ".webm"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


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


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder`` (hidden files excluded), in natural name order.

    Raises :class:`InputError` when the folder cannot be listed."""
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise InputError(folder, f"cannot list folder ({exc.strerror or exc})") from None
    files = [p for p in entries if is_image_path(p) and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


def temp_sibling(path: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh hidden name next to ``path``: ``.{name}.partial-{random}{suffix}``."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial-{secrets.token_hex(4)}{suffix}")


def remove_path(path: str | os.PathLike) -> None:
    """Delete a file or folder if it exists (used for temporaries)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_tree(path: Path) -> None:
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_file():
                _fsync_file(child)
    else:
        _fsync_file(path)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success it replaces ``path``.

    ``directory=True`` creates the temporary as an empty folder (the caller fills it);
    otherwise the caller creates the file. On any exception (KeyboardInterrupt included)
    the temporary is removed and ``path`` is untouched. A folder replaces an existing
    folder at ``path`` only through a rename-aside, so a failure restores the old one.
    ``suffix`` is appended to the temporary's name (e.g. to keep a file extension that
    a writer looks at).
    """
    path = Path(path)
    temp = temp_sibling(path, suffix)
    if directory:
        temp.mkdir()
    try:
        yield temp
        _fsync_tree(temp)
        replace_path(temp, path)
    except BaseException:
        remove_path(temp)
        raise


def replace_path(temp: Path, path: Path) -> None:
    """Move ``temp`` onto ``path``; an existing folder at ``path`` is replaced whole
    (renamed aside first, deleted only after the move succeeded)."""
    if not (path.is_dir() and not path.is_symlink()):
        os.replace(temp, path)
        return
    old = path.with_name(f".{path.name}.old-{secrets.token_hex(4)}")
    os.replace(path, old)
    try:
        os.replace(temp, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as temp:
        temp.write_bytes(data)
    return path


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse an output folder the tool did not make: ``out`` must not be a file, and a
    non-empty folder is only replaced with ``overwrite``.

    Raises:
        InputError: naming ``out``.
    """
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder; choose another output folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(out, "folder exists and is not empty; choose another one or pass --overwrite to replace it")


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], compresslevel: int = 6) -> None:
    """Like ``np.savez_compressed``, but with fixed zip timestamps, so the same arrays give
    the same bytes (``np.savez`` stamps the current time). Not atomic by itself: write
    into a temporary (:func:`atomic_path`)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            array = np.asarray(array)  # (np.ascontiguousarray would turn a 0-d array into 1-d)
            np.lib.format.write_array(buffer, array if array.flags.c_contiguous else array.copy(), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=compresslevel)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8); returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "atomic_path",
    "check_output_folder",
    "is_image_path",
    "is_video_path",
    "list_frame_files",
    "natural_sort_key",
    "remove_path",
    "replace_path",
    "temp_sibling",
    "write_bytes_atomic",
    "write_npz",
    "write_text_atomic",
]
