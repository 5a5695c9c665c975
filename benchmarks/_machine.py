"""What the benchmarks print about the machine they ran on."""

from __future__ import annotations

import subprocess


def cpu_model() -> str:
    """``Model name`` of ``lscpu`` (timings are only comparable on the same CPU)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (lscpu failed)"
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
    return names[0] if names else "unknown"
