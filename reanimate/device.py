"""Which torch device to run on, from the ``--device`` option (``auto``, ``cpu``, ``cuda[:N]``)."""

from __future__ import annotations

import contextlib

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


__all__ = ["autocast", "select_device"]
