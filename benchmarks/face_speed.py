#!/usr/bin/env python
"""Hand-run benchmark: end-to-end speed of ``reanimate animate`` with its default model
(no checkpoint: the zero-shot face-landmark animator) on CPU (not part of the test suite).

End to end means everything the command does: decoding the driving video, face landmark
detection, animation, pasting the face back into the full-size source and encoding. The
sources are a 512x512 and a 2048x2048 version of the public-domain portrait of Grace
Hopper that matplotlib ships (padded to a square, then resized), so the second size
shows the cost of pasting back into a large image.

``reanimate.pipelines.animate`` runs in this process when it accepts ``checkpoint=None``
(a warm-up run on the smaller source first, so that imports and model setup are not
counted); otherwise the script times ``python -m reanimate animate`` in a child process
(start-up included). For each size it prints frames, seconds and frames/s, and the time
per stage when the result reports one (``AnimationResult.timings``).

Usage::

    python benchmarks/face_speed.py                       # examples/driving.mp4, 2 threads
    python benchmarks/face_speed.py --driving clip.mp4 --threads 2 --repeat 3
"""

from __future__ import annotations

import argparse
import inspect
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZES = (512, 2048)


def limit_cpus(threads: int) -> str:
    """Pin this process (and its children) to ``threads`` cores and threads. Runs before
    anything imports torch, which reads OMP_NUM_THREADS once."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) > threads:
        os.sched_setaffinity(0, cpus[:threads])
        return f"{threads} threads pinned to CPUs {cpus[:threads]} of {len(cpus)}"
    return f"{threads} threads on {len(cpus) or os.cpu_count()} CPUs"


def portrait() -> np.ndarray:
    """Grace Hopper, padded to a square by repeating the edge pixels."""
    import matplotlib

    from reanimate.io import read_image

    image = read_image(
        os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")
    )
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    return np.pad(image, ((top, side - height - top), (left, side - width - left), (0, 0)), mode="edge")


def make_sources(folder: Path) -> dict[int, Path]:
    from PIL import Image

    square = Image.fromarray(portrait())
    paths = {}
    for size in SIZES:
        paths[size] = folder / f"portrait_{size}.png"
        square.resize((size, size), Image.LANCZOS).save(paths[size])
    return paths


def in_process_animate():
    """``reanimate.pipelines.animate`` if it runs without a checkpoint, else None."""
    try:
        from reanimate.pipelines import animate
    except ImportError:
        return None
    parameter = inspect.signature(animate).parameters.get("checkpoint")
    if parameter is None or parameter.default is not None:
        return None
    return animate


def stage_times(result) -> dict[str, float]:
    for name in ("timings", "stages", "stage_seconds"):
        value = getattr(result, name, None)
        if isinstance(value, dict) and value:
            return value
    return {}


def run_once(animate, source: Path, driving: Path, output: Path) -> tuple[int, float, dict[str, float]]:
    """Frames, wall seconds and seconds per stage of one animation."""
    started = time.perf_counter()
    if animate is not None:
        result = animate(source, driving, output, checkpoint=None, progress=False)
        return result.frames, time.perf_counter() - started, stage_times(result)
    command = [sys.executable, "-m", "reanimate", "animate", str(source), str(driving), "-o", str(output), "--quiet"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"reanimate animate failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    from reanimate.io import open_frames

    with open_frames(output) as reader:
        frames = sum(1 for _ in reader)
    return frames, seconds, {}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--driving", default=str(REPO / "examples" / "driving.mp4"), help="driving video (default examples/driving.mp4)"
    )
    p.add_argument("--threads", type=int, default=2, help="CPU cores and threads to use (default 2)")
    p.add_argument("--repeat", type=int, default=1, help="keep the fastest of N runs per size (default 1)")
    args = p.parse_args(argv)

    cpus = limit_cpus(args.threads)
    animate = in_process_animate()
    how = "in process (reanimate.pipelines.animate)" if animate else "child process (python -m reanimate animate)"
    print(f"driving {args.driving}; {cpus}; {how}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = make_sources(tmp)
        if animate is not None:
            run_once(animate, sources[SIZES[0]], Path(args.driving), tmp / "warmup.mp4")
        for size, source in sources.items():
            best = None
            for _ in range(args.repeat):
                run = run_once(animate, source, Path(args.driving), tmp / f"out_{size}.mp4")
                if best is None or run[1] < best[1]:
                    best = run
            rows.append((size, *best))

    print(f"\n{'source':>11}  {'frames':>6}  {'seconds':>7}  {'fps':>6}")
    for size, frames, seconds, _ in rows:
        print(f"{size:>5}x{size:<5}  {frames:>6}  {seconds:>7.2f}  {frames / seconds:>6.2f}")
    stages = sorted({name for *_, timings in rows for name in timings})
    if stages:
        print(f"\nms per frame by stage{'':<7}" + "".join(f"{f'{s}x{s}':>12}" for s, *_ in rows))
        for name in stages + ["(not in a stage)"]:
            cells = []
            for _, frames, seconds, timings in rows:
                value = timings.get(name) if name in timings else seconds - sum(timings.values())
                cells.append(f"{1000 * value / frames:>12.1f}")
            print(f"  {name:<26}" + "".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
