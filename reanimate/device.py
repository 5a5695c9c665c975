"""Which torch device to run on, from the ``--device`` option (``auto``, ``cpu``, ``cuda[:N]``),
and the C allocator's settings for running the networks on the CPU."""

from __future__ import annotations

import contextlib
import ctypes
import os

import torch

from .errors import ReanimateError


def select_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cpu``; ``cuda`` or ``cuda:N``.

    Raises :class:`ReanimateError` (one line) for CUDA without a CUDA device or an unknown name.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ReanimateError("--device cuda: no CUDA device is available (use --device cpu)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ReanimateError(f"--device {device}: expected auto, cpu or cuda")
    return torch.device(device)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` on ``device`` to ``dtype``, or no autocast when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


#: glibc's ``mallopt`` parameters (malloc.h) and the values :func:`tune_cpu_allocator` sets.
#: Every frame allocates and frees the same activations, up to 16 MiB each at 256x256
#: (vox-256: 64 channels at full resolution). Above glibc's mmap threshold each is a
#: fresh ``mmap`` whose pages fault in again; freed heap above the trim threshold goes
#: back to the kernel and faults in again on the next frame. 32 MiB (glibc's largest
#: mmap threshold on 64-bit) keeps them all in the heap and re-uses the same pages.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MALLOC_MMAP_THRESHOLD = 32 * 2**20
MALLOC_TRIM_THRESHOLD = 256 * 2**20
#: the environment variables with which a user sets these for the whole process (then
#: :func:`tune_cpu_allocator` leaves them alone)
MALLOC_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (whose malloc these settings are for), else None."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):  # glibc's name and version; None or an error elsewhere
            return None
        return ctypes.CDLL("libc.so.6")
    except (ValueError, OSError):
        return None


def tune_cpu_allocator() -> bool:
    """Set glibc malloc's mmap and trim thresholds (:data:`MALLOC_MMAP_THRESHOLD`,
    :data:`MALLOC_TRIM_THRESHOLD`) for the rest of the process, so that the large
    per-frame buffers of the networks are re-used instead of mapped, faulted in and
    unmapped every frame. What ``MALLOC_MMAP_THRESHOLD_=33554432
    MALLOC_TRIM_THRESHOLD_=268435456`` in the environment does, which glibc reads only
    at process start. Returns whether it did: not on other C libraries, nor where the
    user set any of :data:`MALLOC_ENVIRONMENT`."""
    libc = _glibc()
    if libc is None or any(name in os.environ for name in MALLOC_ENVIRONMENT):
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD)
    )


def release_free_memory() -> None:
    """Give the memory malloc holds free back to the kernel (glibc ``malloc_trim``; nothing
    elsewhere). After loading a model: the file's tensors and the weights replaced in
    preparing it (a new layout or type) were freed into the heap, which the raised trim
    threshold keeps otherwise."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
        libc.malloc_trim(0)


__all__ = ["autocast", "release_free_memory", "select_device", "tune_cpu_allocator"]
