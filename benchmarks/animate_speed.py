#!/usr/bin/env python
"""Hand-run benchmark of ``reanimate animate`` on CPU (not part of the test suite).

Two measurements, both on synthetic media made in a temporary folder and a model with
random weights (``build_model(config, seed=0)``): speed and memory do not depend on
the weights' values.

1. Throughput (frames/s) of the streaming pipeline (``AnimationPipeline.animate``:
   source encoded once, driving frames in batches) against a baseline that does what
   the reference FOMM demo does per frame, on the same frames and in the same run:
   batch 1, source keypoints and the generator's full forward (source encoding
   included) recomputed for every frame. Both are timed end to end (decode, resize,
   model, encode to .mp4) and model only (pre-decoded frame tensors, no I/O).

2. Peak memory (peak RSS) of a ``python -m reanimate animate`` child process for a
   short and a long driving video (default 100 and 1000 frames). A streaming pipeline
   should give a ratio close to 1.0. The child reports its own peak (``VmHWM``, Linux).

Usage::

    python benchmarks/animate_speed.py                      # everything, defaults
    python benchmarks/animate_speed.py --skip-memory        # throughput only (~3 min)
    python benchmarks/animate_speed.py --skip-throughput --memory-config small

With the defaults (vox-256 everywhere) the whole run takes about 10 minutes on
2 CPU cores (AMD EPYC, AVX-512): about 3 minutes for the throughput part and about
6.5 minutes for the memory part, most of it the 1000-frame run (vox-256 animates
about 3 frames/s on such a machine). ``--memory-config small`` uses a much smaller
network derived from vox-256 for the memory check (about a minute). Timings are noisy
when other processes share the CPUs (the load average is printed); ``--repeat`` (default 3)
keeps the best of three.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # synthetic media helpers

from media import make_image, make_video  # noqa: E402

from reanimate import checkpoint as ckpt  # noqa: E402
from reanimate.animators.base import Transfer  # noqa: E402
from reanimate.animators.fomm import FommAnimator  # noqa: E402
from reanimate.io import open_frames, open_writer, read_image, tensor_to_frames  # noqa: E402
from reanimate.models import build_model, load_config  # noqa: E402
from reanimate.models.config import resolve_config_path  # noqa: E402
from reanimate.motion import relative_motion  # noqa: E402
from reanimate.pipelines.animate import AnimationOptions, AnimationPipeline  # noqa: E402

# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> str:
    """Load average: other processes on the machine make the timings noisy."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(  # noqa: E731
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
    )
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def write_small_config(path: Path, base: str = "vox-256") -> Path:
    """A much smaller network with ``base``'s structure (same keys, fewer blocks/features)."""
    doc = yaml.safe_load(resolve_config_path(base).read_text())
    doc = copy.deepcopy(doc)
    model = doc["model_params"]
    model["kp_detector_params"].update(block_expansion=8, max_features=64, num_blocks=3)
    gen = model["generator_params"]
    gen.update(block_expansion=16, max_features=64, num_bottleneck_blocks=1)
    gen["dense_motion_params"].update(block_expansion=8, max_features=64, num_blocks=3)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------
# 1. Throughput
# --------------------------------------------------------------------------------------


def reference_loop_model(model, source: torch.Tensor, driving: torch.Tensor) -> list[torch.Tensor]:
    """What the reference demo does per driving frame, model calls only (batch 1).

    Source keypoints and the full generator forward (which re-encodes the source) are
    recomputed for every frame; the initial driving frame's keypoints once.
    """
    outputs = []
    with torch.inference_mode():
        kp_initial = model.kp_detector(driving[:1])
        for i in range(driving.shape[0]):
            frame = driving[i : i + 1]
            kp_source = model.kp_detector(source)
            kp_driving = model.kp_detector(frame)
            kp_norm = relative_motion(kp_source, kp_driving, kp_initial)
            out = model.generator(source, kp_norm, kp_source)
            outputs.append(out.prediction)
    return outputs


def reference_loop_end_to_end(
    pipe: FommAnimator, source_path: Path, driving_path: Path, output_path: Path, timer: ModelTimer
) -> int:
    """The per-frame reference loop with the pipeline's decoding, resizing and encoding."""
    model = pipe.model
    source, _ = pipe.prepare([read_image(source_path)])
    done = 0
    with torch.inference_mode(), open_frames(driving_path) as reader:
        with open_writer(output_path, reader.fps) as writer:
            initial, _ = pipe.prepare([reader.read_frame(0)])
            kp_initial = timer.wrap(model.kp_detector)(initial)
            for image in reader:
                frame, _ = pipe.prepare([image])
                with timer:
                    kp_source = model.kp_detector(source)
                    kp_driving = model.kp_detector(frame)
                    kp_norm = relative_motion(kp_source, kp_driving, kp_initial)
                    out = model.generator(source, kp_norm, kp_source)
                writer.write(tensor_to_frames(out.prediction))
                done += 1
    return done


class ModelTimer:
    """Accumulates the wall time spent in model calls (nested calls counted once)."""

    def __init__(self):
        self.seconds = 0.0
        self._depth = 0
        self._start = 0.0

    def __enter__(self):
        self._depth += 1
        if self._depth == 1:
            self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._start

    def wrap(self, fn):
        def wrapper(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)

        return wrapper


def pipeline_end_to_end(
    pipe: FommAnimator, source_path: Path, driving_path: Path, output_path: Path, batch_size: int, timer: ModelTimer
) -> int:
    """``AnimationPipeline.animate`` as the CLI runs it, timing its model steps on the side."""
    names = ("encode", "detect", "generate")
    for name in names:  # instance attributes shadow the methods for this call only
        setattr(pipe, name, timer.wrap(getattr(pipe, name)))
    try:
        result = AnimationPipeline(pipe).animate(
            source_path, driving_path, output_path, AnimationOptions(batch_size=batch_size), progress=False
        )
    finally:
        for name in names:
            delattr(pipe, name)
    return result.frames


def pipeline_model_only(
    pipe: FommAnimator, source: torch.Tensor, driving: torch.Tensor, batch_size: int
) -> list[torch.Tensor]:
    """The pipeline's model steps (encode source once, detect + generate per batch)."""
    options = Transfer()
    state = pipe.encode(source)
    kp_initial = pipe.detect(driving[:1])
    outputs = []
    for start in range(0, driving.shape[0], batch_size):
        images = driving[start : start + batch_size]
        out = pipe.generate(state, pipe.detect(images), kp_initial, options)
        outputs.append(out.prediction)
    return outputs


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def run_throughput(args, work: Path) -> list[str]:
    config = load_config(args.config)
    height, width = config.image_size
    source_path = make_image(work / "source.png", size=(args.size, args.size))
    driving_path = make_video(work / "driving.mp4", num_frames=args.frames, size=(args.size, args.size))
    warm_path = make_video(work / "warmup.mp4", num_frames=max(args.batch_sizes), size=(args.size, args.size))
    model = build_model(config, seed=0)
    pipe = FommAnimator(model, device="cpu")

    # The same decoded frames for every model-only run.
    with open_frames(driving_path) as reader:
        decoded = list(reader)
    source_t, _ = pipe.prepare([read_image(source_path)])
    driving_t, _ = pipe.prepare(decoded)
    n = driving_t.shape[0]
    log(
        f"throughput: {args.config}, {n} driving frames {args.size}x{args.size} -> {width}x{height}, "
        f"torch threads {torch.get_num_threads()}"
    )

    # Warm-up (oneDNN primitive caches, allocator, codec init): once per code path and shape.
    with torch.inference_mode():
        reference_loop_model(model, source_t, driving_t[:2])
    reference_loop_end_to_end(pipe, source_path, warm_path, work / "warmup_out.mp4", ModelTimer())
    for b in args.batch_sizes:
        pipeline_model_only(pipe, source_t, driving_t[:b], b)
        pipeline_end_to_end(pipe, source_path, warm_path, work / "warmup_out.mp4", b, ModelTimer())

    results = []  # (name, e2e seconds, model seconds within e2e, model-only seconds)
    outputs = {}
    baseline = "per-frame baseline (reference demo)"
    for _ in range(args.repeat):
        log("  per-frame baseline (batch 1, source keypoints + full generator forward per frame) ...")
        model_s, outs = timed(reference_loop_model, model, source_t, driving_t)
        outputs["baseline"] = torch.cat(outs)
        timer = ModelTimer()
        e2e_s, done = timed(reference_loop_end_to_end, pipe, source_path, driving_path, work / "baseline.mp4", timer)
        assert done == n, (done, n)
        results.append((baseline, e2e_s, timer.seconds, model_s))
        for b in args.batch_sizes:
            log(f"  pipeline, batch {b} ...")
            model_s, outs = timed(pipeline_model_only, pipe, source_t, driving_t, b)
            outputs[f"pipeline b{b}"] = torch.cat(outs)
            timer = ModelTimer()
            e2e_s, done = timed(
                pipeline_end_to_end, pipe, source_path, driving_path, work / f"pipeline_b{b}.mp4", b, timer
            )
            assert done == n, (done, n)
            results.append((f"pipeline (animate), batch {b}", e2e_s, timer.seconds, model_s))

    # Best of the repeats per row (end-to-end and model-only taken separately).
    best: dict[str, tuple[float, float, float]] = {}
    for name, e2e_s, in_model_s, model_s in results:
        old = best.get(name)
        if old is None or e2e_s < old[0]:
            best[name] = (e2e_s, in_model_s, old[2] if old else model_s)
        best[name] = (best[name][0], best[name][1], min(best[name][2], model_s))
    base_e2e, _, base_model = best[baseline]
    rows = []
    for name, (e2e_s, in_model_s, model_s) in best.items():
        rows.append(
            [
                name,
                f"{n / e2e_s:.2f}",
                f"{base_e2e / e2e_s:.2f}x",
                f"{n / model_s:.2f}",
                f"{base_model / model_s:.2f}x",
                f"{1000 * in_model_s / n:.0f}",
                f"{1000 * (e2e_s - in_model_s) / n:.0f}",
            ]
        )
    lines = [
        f"Throughput: {args.config}, {n} driving frames {width}x{height}, CPU, {torch.get_num_threads()} torch threads"
        f", best of {args.repeat}",
        table(["path", "e2e fps", "e2e speed-up", "model fps", "model speed-up", "model ms/f", "other ms/f"], rows),
        "e2e: the whole job (read source, decode driving .mp4, resize, model, H.264 encode to .mp4), wall time;",
        "model: model calls only, on pre-decoded frame tensors (a separate run);",
        "model ms/f, other ms/f: per frame, time inside / outside the model calls during the e2e run;",
        "speed-up: relative to the per-frame baseline.",
    ]
    reference = outputs["baseline"]
    diffs = [f"{k}: {float((v - reference).abs().max()):.1e}" for k, v in outputs.items() if k != "baseline"]
    lines.append("max |pipeline - baseline| prediction difference: " + ", ".join(diffs))
    return lines


# --------------------------------------------------------------------------------------
# 2. Peak memory
# --------------------------------------------------------------------------------------


# ``python -m reanimate ARGS`` (runpy is what ``-m`` uses), then the process's own peak
# RSS, VmHWM, written to the file named by $REANIMATE_BENCH_PEAK_FILE.
_CHILD = """
import os, runpy, sys
sys.argv = ["reanimate"] + sys.argv[1:]
code = 0
try:
    runpy.run_module("reanimate", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
finally:
    status = open("/proc/self/status").read()
    peak_kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    with open(os.environ["REANIMATE_BENCH_PEAK_FILE"], "w") as out:
        out.write(peak_kib)
sys.exit(code)
"""


def child_peak_rss(cli_args: list[str], work: Path, tag: str) -> tuple[int, float, int]:
    """Run ``python -m reanimate CLI_ARGS`` in a fresh process.

    Returns (exit code, wall seconds, the child's peak RSS in bytes). The peak is the
    child's own ``VmHWM`` (Linux). Not ``ru_maxrss`` of ``getrusage``/``wait4``: Linux
    starts a child's ``ru_maxrss`` at its parent's peak RSS when it is forked and exec'd
    (the old memory map's high-water mark is kept at exec), so with this benchmark
    process at ~1 GiB after the throughput run, every child would report >= 1 GiB.
    """
    peak_file = work / f"peak_{tag}.txt"
    log_path = work / f"child_{tag}.log"
    env = dict(os.environ, REANIMATE_BENCH_PEAK_FILE=str(peak_file))
    start = time.perf_counter()
    with open(log_path, "wb") as out:
        code = subprocess.run(
            [sys.executable, "-c", _CHILD, *cli_args], stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env
        ).returncode
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"python -m reanimate {' '.join(cli_args)} failed (exit {code}):\n{log_path.read_text()}")
    return code, seconds, int(peak_file.read_text()) * 1024


def run_memory(args, work: Path) -> list[str]:
    if args.memory_config == "small":
        config_path = write_small_config(work / "small.yaml", args.config)
        config_name = f"small (derived from {args.config})"
    else:
        config_path = resolve_config_path(args.memory_config)
        config_name = args.memory_config
    checkpoint = ckpt.save(work / "memory.safetensors", build_model(load_config(config_path), seed=0))
    source = make_image(work / "mem_source.png", size=(args.size, args.size))
    rows, peaks = [], []
    for frames in args.memory_frames:
        log(f"memory: making a {frames}-frame driving video ...")
        driving = make_video(work / f"mem_driving_{frames}.mp4", num_frames=frames, size=(args.size, args.size))
        output = work / f"mem_out_{frames}.mp4"
        cli_args = [
            "animate",
            str(source),
            str(driving),
            "-o",
            str(output),
            "--checkpoint",
            str(checkpoint),
            "--device",
            "cpu",
            "--batch-size",
            str(args.memory_batch_size),
            "--quiet",
        ]
        log(f"memory: python -m reanimate animate, {frames} frames ({config_name}) ...")
        _, seconds, peak = child_peak_rss(cli_args, work, str(frames))
        with open_frames(output) as reader:
            written = reader.frame_count
        peaks.append(peak)
        rows.append([f"{frames}", f"{written}", f"{peak / 2**20:.0f}", f"{seconds:.0f}", f"{frames / seconds:.2f}"])
        driving.unlink()
        output.unlink()
    lines = [
        f"Peak memory: python -m reanimate animate, {config_name}, {args.size}x{args.size}, "
        f"batch {args.memory_batch_size}, CPU",
        table(["driving frames", "written", "peak RSS MiB", "wall s", "fps incl. startup"], rows),
    ]
    if len(peaks) > 1:
        lines.append(
            f"peak RSS ratio {args.memory_frames[-1]} / {args.memory_frames[0]} frames: "
            f"{peaks[-1] / peaks[0]:.3f} (streaming: ~1.0)"
        )
    return lines


# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--config", default="vox-256", help="model config (name or path) for the throughput run")
    parser.add_argument("--frames", type=int, default=32, help="driving frames for the throughput run")
    parser.add_argument("--size", type=int, default=256, help="width = height of the synthetic media")
    parser.add_argument("--batch-sizes", type=int_list, default="1,4", help="pipeline batch sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions of the throughput run (best kept)")
    parser.add_argument(
        "--memory-frames",
        type=int_list,
        default="100,1000",
        help="driving video lengths for the peak-memory runs, comma-separated",
    )
    parser.add_argument(
        "--memory-config",
        default="vox-256",
        help="config for the memory runs: a name or path, or 'small' for a small network "
        "derived from --config (much faster)",
    )
    parser.add_argument("--memory-batch-size", type=int, default=4, help="--batch-size of the memory runs")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--workdir", help="keep the media, checkpoints and outputs here instead of a temp dir")
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames must be at least 2")

    started = time.perf_counter()
    print(
        f"reanimate benchmark: torch {torch.__version__}, numpy {np.__version__}, python {platform.python_version()},"
        f" {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; {load()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="reanimate-bench-") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not args.skip_throughput:
            section_start = time.perf_counter()
            lines = run_throughput(args, work)
            print("\n" + "\n".join(lines) + f"\n({time.perf_counter() - section_start:.0f} s; {load()})", flush=True)
        if not args.skip_memory:
            section_start = time.perf_counter()
            lines = run_memory(args, work)
            print("\n" + "\n".join(lines) + f"\n({time.perf_counter() - section_start:.0f} s; {load()})", flush=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
