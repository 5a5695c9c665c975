#!/usr/bin/env python
"""Hand-run benchmark: end-to-end speed and peak memory of ``reanimate animate`` with its
default model (no checkpoint: the zero-shot face-landmark animator) on CPU (not part of
the test suite).

End to end means everything the command does: decoding the driving video, face landmark
detection, animation, pasting the face back into the full-size source and encoding. The
sources are square versions (512, 2048 and 4096 pixels by default, ``--sizes``) of the
public-domain portrait of Grace Hopper that matplotlib ships (padded to a square, then
resized), or of ``--source``, so the larger sizes show the cost of pasting back into,
and encoding, a large image.

Each size runs in a fresh child process, so that its peak RSS (``VmHWM``, Linux) is its
own: the child animates once with the 512x512 source (warm-up: imports, model set-up and
MediaPipe's graphs are not timed), then times ``reanimate.pipelines.animate`` on the size
and reports frames, seconds, seconds per stage (``AnimationResult.timings``) and its peak
RSS. ``--code DIR`` runs the children on another checkout of the package (e.g. the code
before a change, to compare in the same conditions). The encode stage is the time the
pipeline waits for the writer; with the encoder thread, encoding itself overlaps the
other stages.

Usage::

    python benchmarks/face_speed.py                       # examples/driving.mp4, 2 threads
    python benchmarks/face_speed.py --driving clip.mp4 --threads 2 --repeat 3
    python benchmarks/face_speed.py --sizes 2048 --code /tmp/old   # an older checkout
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZES = (512, 2048, 4096)
WARMUP_SIZE = 512


def limit_cpus(threads: int) -> str:
    """Pin this process (and its children) to ``threads`` cores. Torch's own thread count
    is left to ``reanimate animate`` (the animator's ``Requirements.cpu_threads``, else one
    per core), as a user running it gets: OMP_NUM_THREADS is not set, since a set one
    overrides that choice."""
    os.environ.pop("OMP_NUM_THREADS", None)
    for name in ("MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) > threads:
        os.sched_setaffinity(0, cpus[:threads])
        return f"{threads} threads pinned to CPUs {cpus[:threads]} of {len(cpus)}"
    return f"{threads} threads on {len(cpus) or os.cpu_count()} CPUs"


def portrait(path: str | None = None) -> np.ndarray:
    """``path`` (default: Grace Hopper), padded to a square by repeating the edge pixels."""
    import matplotlib

    from reanimate.io import read_image

    if path is None:
        path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")
    image = read_image(path)
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    return np.pad(image, ((top, side - height - top), (left, side - width - left), (0, 0)), mode="edge")


def make_sources(folder: Path, sizes, source: str | None = None) -> dict[int, Path]:
    from PIL import Image

    square = Image.fromarray(portrait(source))
    paths = {}
    for size in sorted(set(sizes) | {WARMUP_SIZE}):
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


def peak_rss_mib() -> float:
    """This process's peak resident memory (``VmHWM``) in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(args) -> int:
    """One size in this (fresh) process: warm up, time, print one JSON line."""
    import json

    limit_cpus(args.threads)
    animate = in_process_animate()
    if animate is None:
        sys.exit("reanimate.pipelines.animate does not run without a checkpoint in this checkout")
    import reanimate

    try:  # torch's threads as `reanimate animate` sets them (checkouts that have the rule)
        from reanimate.cli.common import animator_threads
        from reanimate.pipelines.animate import build_pipeline

        threads = animator_threads(build_pipeline())
    except ImportError:
        threads = contextlib.nullcontext()
    threads.__enter__()  # held for the rest of this one-size process

    options = {k: v for k, v in (("crf", args.crf), ("preset", args.preset)) if v is not None}
    out = Path(args.output)
    animate(Path(args.warmup), Path(args.driving), out, checkpoint=None, progress=False, **options)
    best = None
    for _ in range(args.repeat):
        started = time.perf_counter()
        result = animate(Path(args.child), Path(args.driving), out, checkpoint=None, progress=False, **options)
        run = (result.frames, time.perf_counter() - started, stage_times(result))
        if best is None or run[1] < best[1]:
            best = run
    frames, seconds, timings = best
    report = {"frames": frames, "seconds": seconds, "timings": timings, "peak_mib": peak_rss_mib()}
    report["package"] = str(Path(reanimate.__file__).parent)
    print("RESULT " + json.dumps(report))
    return 0


def run_child(args, source: Path, warmup: Path, output: Path) -> tuple[int, float, dict[str, float], float, str]:
    """Frames, wall seconds, seconds per stage, peak RSS (MiB) and package of one size."""
    import json

    command = [sys.executable, __file__, "--child", str(source), "--warmup", str(warmup), "--output", str(output)]
    command += ["--driving", args.driving, "--threads", str(args.threads), "--repeat", str(args.repeat)]
    for name in ("crf", "preset"):
        if getattr(args, name) is not None:
            command += [f"--{name}", str(getattr(args, name))]
    env = dict(os.environ)
    if args.code:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(args.code).resolve()), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"the {source.name} run failed: {(done.stderr or done.stdout).strip().splitlines()[-3:]}")
    report = json.loads(lines[-1][len("RESULT ") :])
    return report["frames"], report["seconds"], report["timings"], report["peak_mib"], report["package"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--driving", default=str(REPO / "examples" / "driving.mp4"), help="driving video (default examples/driving.mp4)"
    )
    p.add_argument("--source", help="portrait to make the sources from (default: matplotlib's Grace Hopper)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="source sides (default 512,2048,4096)")
    p.add_argument("--threads", type=int, default=2, help="CPU cores and threads to use (default 2)")
    p.add_argument("--repeat", type=int, default=1, help="keep the fastest of N runs per size (default 1)")
    p.add_argument("--crf", type=int, help="passed to animate (default: animate's)")
    p.add_argument("--preset", help="passed to animate (default: animate's)")
    p.add_argument("--code", help="folder holding the reanimate package to run (default: this checkout)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--warmup", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)

    sizes = [int(s) for s in args.sizes.split(",")]
    cpus = limit_cpus(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"driving {args.driving}; {cpus}; load average {load:.2f}; one child process per size")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = make_sources(tmp, sizes, args.source)
        for size in sizes:
            run = run_child(args, sources[size], sources[WARMUP_SIZE], tmp / f"out_{size}.mp4")
            rows.append((size, *run))
    print(f"package {rows[0][-1]}; load average after {os.getloadavg()[0]:.2f}")
    print(f"\n{'source':>11}  {'frames':>6}  {'seconds':>7}  {'fps':>6}  {'peak RSS MiB':>12}")
    for size, frames, seconds, _, peak, _ in rows:
        print(f"{size:>5}x{size:<5}  {frames:>6}  {seconds:>7.2f}  {frames / seconds:>6.2f}  {peak:>12.0f}")
    stages = sorted({name for _, _, _, timings, _, _ in rows for name in timings})
    if stages:
        print(f"\nms per frame by stage{'':<7}" + "".join(f"{f'{s}x{s}':>12}" for s, *_ in rows))
        for name in stages + ["(not in a stage)"]:
            cells = []
            for _, frames, seconds, timings, _, _ in rows:
                value = timings.get(name) if name in timings else seconds - sum(timings.values())
                cells.append(f"{1000 * value / frames:>12.1f}")
            print(f"  {name:<26}" + "".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
