"""Numeric precision of the learned networks at inference (``animate --precision``).

``fp32`` runs everything in float32. ``bf16`` runs the networks under bfloat16
autocast: convolutions and matrix products in bfloat16, the ops autocast keeps in
float32 (softmax, grid sampling, normalisation statistics) and all motion geometry
(keypoints, Jacobians, relative transfer) in float32. ``fp16`` is the same with
float16, on CUDA only (PyTorch's CPU kernels have no fast float16 path).

bfloat16 is only fast where the hardware computes it: on x86 CPUs with AVX512_BF16
(Intel Cooper Lake and later, AMD Zen 4 and later) or AMX-BF16 (Intel Sapphire Rapids
and later), on Arm CPUs with the BF16 extension, and on CUDA GPUs of compute capability
8.0 or more. Elsewhere oneDNN emulates it, slower than float32, so :func:`resolve_precision`
runs float32 instead and says so in one note naming the CPU.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ReanimateError

#: what ``--precision`` takes
PRECISIONS = ("fp32", "bf16", "fp16")
#: the autocast type of each precision (None: no autocast)
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: ``/proc/cpuinfo`` flags of units that compute bfloat16 products natively: x86
#: AVX512_BF16 and AMX-BF16, Arm's BF16 extension (``Features`` on aarch64)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")

_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Precision:
    """What runs: ``name`` (one of :data:`PRECISIONS`; ``fp32`` also where ``bf16`` was
    asked for and the device has no bfloat16 units), its autocast ``dtype`` (None for
    fp32) and a one-line ``note`` for the user when the request was changed."""

    name: str
    dtype: torch.dtype | None
    note: str | None = None


def _cpuinfo_fields() -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` ({} where unreadable)."""
    try:
        text = _CPUINFO.read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else the platform's word for it)."""
    fields = _cpuinfo_fields()
    return fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_bf16_units() -> tuple[str, ...] | None:
    """Which of :data:`BF16_CPU_FLAGS` this CPU has (empty: none), or None where its
    flags cannot be read (no ``/proc/cpuinfo``: not Linux)."""
    fields = _cpuinfo_fields()
    flags = fields.get("flags", fields.get("features"))
    if flags is None:
        return None
    present = set(flags.split())
    return tuple(flag for flag in BF16_CPU_FLAGS if flag in present)


def bf16_support(device: torch.device) -> str:
    """One line on whether ``device`` computes bfloat16 natively, for benchmarks and notes."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{name}: bf16 {'supported' if torch.cuda.is_bf16_supported() else 'not supported'}"
    units = cpu_bf16_units()
    if units is None:
        return f"{cpu_name()}: bf16 units unknown (no /proc/cpuinfo)"
    return f"{cpu_name()}: bf16 units {', '.join(units) if units else 'none'}"


def resolve_precision(name: str, device: torch.device) -> Precision:
    """The precision to run for ``--precision name`` on ``device``.

    ``fp16`` on the CPU is a one-line error; ``bf16`` without bfloat16 units (CPU flags,
    :func:`cpu_bf16_units`, or a CUDA device before compute capability 8.0) runs float32
    with a note, since emulated bfloat16 is slower than float32. Where the CPU's flags
    cannot be read, ``bf16`` runs as asked.
    """
    if name not in PRECISIONS:
        raise ReanimateError(f"--precision {name}: expected one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type != "cuda":
        raise ReanimateError("--precision fp16 needs a CUDA device (on the CPU use --precision bf16)")
    if name == "bf16":
        if device.type == "cuda":
            supported = torch.cuda.is_bf16_supported()
            where = torch.cuda.get_device_name(device)
        else:
            units = cpu_bf16_units()
            supported = units is None or bool(units)
            where = f"this CPU ({cpu_name()})"
        if not supported:
            note = (
                f"--precision bf16: {where} has no bfloat16 units (emulated bfloat16 is slower than "
                "float32); running fp32"
            )
            return Precision("fp32", None, note)
    return Precision(name, AUTOCAST_DTYPES[name])


__all__ = [
    "AUTOCAST_DTYPES",
    "BF16_CPU_FLAGS",
    "PRECISIONS",
    "Precision",
    "bf16_support",
    "cpu_bf16_units",
    "cpu_name",
    "resolve_precision",
]
