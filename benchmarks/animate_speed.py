#!/usr/bin/env python
"""Hand-run benchmark of ``reanimate animate`` on the CPU: per-frame speed and peak
memory of whole processes, by precision (not part of the test suite).

Every measurement is a fresh process on the same synthetic media (a 256x256 source and
driving clip made in a temporary folder) with the same random-weight vox-256 model
(``build_model(config, seed=0)``; speed and memory do not depend on the weights'
values). A row is one way of running:

* ``baseline``: what the official FOMM demo (``demo.py --relative --adapt_scale --cpu``)
  computes per frame, on our networks and I/O: source keypoints and the first driving
  frame's once, then for every frame the driving keypoints and the generator's full
  forward, source encoding included, at batch 1 in float32. The yardstick where no
  official checkout is given.
* ``official``: the official ``demo.py`` itself (``--official PATH``: a checkout of
  AliaksandrSiarohin/first-order-model; ``--official-python``: an interpreter with its
  requirements). Its weights are the same random ones, saved as a ``.pth.tar``.
* ``fp32``, ``bf16``: ``python -m reanimate animate --crop none --adapt-scale --device
  cpu --precision P`` with every other option at its default (batch 1 on the CPU,
  channels-last as ``animators/fomm.py``'s ``CHANNELS_LAST`` says, the allocator tuned);
  ``fp32-b4``: ``--batch-size 4`` (the default before); ``fp32-nchw``, ``bf16-nchw``:
  channels-last off; ``fp32-glibc``, ``bf16-glibc``: glibc malloc's own
  thresholds (``device.tune_cpu_allocator`` not called).

Speed: each row runs on a short and a long clip (``--frames``, default 10 and 40),
``--runs`` times each (default 5), interleaved with the other rows; the median wall
times give the milliseconds per extra frame, ``(long - short) / (frames long - frames
short)``, free of start-up, loading and the source's encoding (``start s``: what a
zero-frame clip would take). ``sys ms/f`` is the same for the kernel's share of the
CPU time (page faults, ``mmap``): what the allocator settings change. Ratios are
against ``baseline``, and against ``official`` where given.

Memory: the peak RSS (the child's own ``VmHWM``, Linux) of one run per row on longer
clips (``--memory-frames``, default 100 and 1000), and for ``reanimate`` rows the peak
from the first frame on (the high-water mark reset when the frames begin): loading the
model is where the process peaks.

Error: one run of ``fp32`` and ``bf16`` each on the long clip written as PNG frames;
the mean and largest absolute difference, in levels of 255.

Usage::

    python benchmarks/animate_speed.py --threads 2                   # everything (about an hour on 2 cores)
    python benchmarks/animate_speed.py --rows baseline,fp32,bf16 --runs 3 --skip-memory
    python benchmarks/animate_speed.py --official ~/first-order-model --official-python ~/fomm-env/bin/python

``--threads N`` sets ``OMP_NUM_THREADS`` for the children (default: as this process's
environment says; PyTorch's default is one thread per core). Timings are only
comparable on one CPU (its name and bfloat16 units are printed) and on a quiet machine
(the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # synthetic media helpers
sys.path.insert(0, str(REPO / "benchmarks"))

from _machine import cpu_model  # noqa: E402
from media import make_image, make_video  # noqa: E402

from reanimate import checkpoint as ckpt  # noqa: E402
from reanimate.models import build_model, load_config  # noqa: E402
from reanimate.precision import bf16_support  # noqa: E402

#: row name -> (kind, extra CLI options, environment for the child wrapper)
ROWS = {
    "baseline": ("baseline", [], {}),
    "official": ("official", [], {}),
    "fp32": ("reanimate", ["--precision", "fp32"], {}),
    "fp32-b4": ("reanimate", ["--precision", "fp32", "--batch-size", "4"], {}),
    "fp32-nchw": ("reanimate", ["--precision", "fp32"], {"REANIMATE_BENCH_CHANNELS_LAST": "0"}),
    "fp32-glibc": ("reanimate", ["--precision", "fp32"], {"REANIMATE_BENCH_ALLOCATOR": "glibc"}),
    "bf16": ("reanimate", ["--precision", "bf16"], {}),
    "bf16-nchw": ("reanimate", ["--precision", "bf16"], {"REANIMATE_BENCH_CHANNELS_LAST": "0"}),
    "bf16-glibc": ("reanimate", ["--precision", "bf16"], {"REANIMATE_BENCH_ALLOCATOR": "glibc"}),
}
DEFAULT_ROWS = "baseline,official,fp32,fp32-b4,fp32-nchw,fp32-glibc,bf16,bf16-nchw,bf16-glibc"

# The child: run the job, then write its own peak RSS (VmHWM) to $REANIMATE_BENCH_PEAK_FILE.
# Not ru_maxrss of wait4: Linux starts a child's ru_maxrss at its parent's peak RSS when
# it is forked and exec'd, so every child would report at least this process's peak.
_CHILD = """
import os, runpy, sys
kind, args = sys.argv[1], sys.argv[2:]
code = 0
load_peak = 0

def peak_kib():
    status = open("/proc/self/status").read()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))

try:
    if kind == "reanimate":
        # The peak up to the first frame (imports, loading the model) apart: note it and
        # reset the high-water mark (clear_refs 5, Linux >= 4.0) when the frames begin.
        import importlib
        pipeline = importlib.import_module("reanimate.pipelines.animate")
        plain_animate = pipeline.AnimationPipeline.animate
        def animate(self, *a, **k):
            global load_peak
            load_peak = peak_kib()
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")
            return plain_animate(self, *a, **k)
        pipeline.AnimationPipeline.animate = animate
        if "REANIMATE_BENCH_CHANNELS_LAST" in os.environ:
            from reanimate.animators import fomm
            on = os.environ["REANIMATE_BENCH_CHANNELS_LAST"] == "1"
            fomm.CHANNELS_LAST.update({key: on for key in fomm.CHANNELS_LAST if key[0] == "cpu"})
        if os.environ.get("REANIMATE_BENCH_ALLOCATOR") == "glibc":
            from reanimate import device
            device.tune_cpu_allocator = lambda: False
        sys.argv = ["reanimate"] + args
        runpy.run_module("reanimate", run_name="__main__", alter_sys=True)
    elif kind == "official":
        root = os.environ["REANIMATE_BENCH_OFFICIAL"]
        sys.path.insert(0, root)
        import yaml  # demo.py calls yaml.load(f), which PyYAML >= 6 refuses without a Loader
        plain_load = yaml.load
        yaml.load = lambda stream, Loader=yaml.SafeLoader: plain_load(stream, Loader=Loader)
        sys.argv = [os.path.join(root, "demo.py")] + args
        runpy.run_path(sys.argv[0], run_name="__main__")
    else:
        sys.argv = [os.environ["REANIMATE_BENCH_SCRIPT"], "--child-baseline"] + args
        runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code
finally:
    with open(os.environ["REANIMATE_BENCH_PEAK_FILE"], "w") as out:
        out.write(f"{load_peak} {peak_kib()}")
sys.exit(code)
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> str:
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


# --------------------------------------------------------------------------------------
# The baseline child: the official demo's per-frame computation on our networks
# --------------------------------------------------------------------------------------


def child_baseline(argv: list[str]) -> int:
    """``SOURCE DRIVING OUTPUT CHECKPOINT``: ``demo.py --relative --adapt_scale --cpu``'s
    ``make_animation`` (batch 1, float32, the generator's full forward per frame) with
    our networks, decoding and encoding streamed."""
    from reanimate.io import frames_to_tensor, open_frames, open_writer, read_image, tensor_to_frames
    from reanimate.motion import relative_motion

    source_path, driving_path, output_path, checkpoint = argv
    model = ckpt.load(checkpoint).eval()
    with torch.inference_mode(), open_frames(driving_path) as reader:
        source = frames_to_tensor(read_image(source_path)[None])
        kp_source = model.kp_detector(source)
        kp_initial = model.kp_detector(frames_to_tensor(reader.read_frame(0)[None]))
        with open_writer(output_path, reader.fps) as writer:
            for frame in reader:
                kp_driving = model.kp_detector(frames_to_tensor(frame[None]))
                kp_norm = relative_motion(kp_source, kp_driving, kp_initial, adapt_movement_scale=True)
                out = model.generator(source, kp_norm, kp_source, return_deformed=False)
                writer.write(tensor_to_frames(out.prediction))
    return 0


# --------------------------------------------------------------------------------------
# Running children
# --------------------------------------------------------------------------------------


class Media:
    """The source, the clips, the checkpoints and the child's command line for a row."""

    def __init__(self, args, work: Path):
        self.work, self.args = work, args
        config = load_config(args.config)
        model = build_model(config, seed=0)
        self.checkpoint = ckpt.save(work / "model.safetensors", model)
        self.official_checkpoint = work / "model.pth.tar"
        torch.save(
            {"kp_detector": model.kp_detector.state_dict(), "generator": model.generator.state_dict()},
            self.official_checkpoint,
        )
        del model
        self.source = make_image(work / "source.png", size=(args.size, args.size))
        self.clips: dict[int, Path] = {}

    def clip(self, frames: int) -> Path:
        if frames not in self.clips:
            log(f"making a {frames}-frame driving clip ...")
            path = self.work / f"driving_{frames}.mp4"
            self.clips[frames] = make_video(path, num_frames=frames, size=(self.args.size, self.args.size))
        return self.clips[frames]

    def command(self, row: str, frames: int, output: Path) -> tuple[str, list[str], dict[str, str]]:
        kind, options, env = ROWS[row]
        driving = str(self.clip(frames))
        if kind == "reanimate":
            args = ["animate", str(self.source), driving, "-o", str(output), "--checkpoint", str(self.checkpoint)]
            return kind, args + ["--crop", "none", "--adapt-scale", "--device", "cpu", "-q", *options], env
        if kind == "official":
            root = Path(self.args.official).resolve()
            args = ["--config", str(root / "config" / f"{self.args.config}.yaml"), "--checkpoint"]
            args += [str(self.official_checkpoint), "--source_image", str(self.source), "--driving_video", driving]
            return kind, args + ["--result_video", str(output), "--relative", "--adapt_scale", "--cpu"], env
        return kind, [str(self.source), driving, str(output), str(self.checkpoint)], env


def run_child(media: Media, row: str, frames: int, output: Path) -> dict[str, float]:
    """One fresh process: wall seconds, user and system CPU seconds, peak RSS bytes."""
    kind, args, env = media.command(row, frames, output)
    peak_file = media.work / "peak.txt"
    child_env = dict(os.environ, REANIMATE_BENCH_PEAK_FILE=str(peak_file), **env)
    child_env["REANIMATE_BENCH_SCRIPT"] = str(Path(__file__).resolve())
    if media.args.threads:
        child_env["OMP_NUM_THREADS"] = str(media.args.threads)
    python = sys.executable
    if kind == "official":
        child_env["REANIMATE_BENCH_OFFICIAL"] = str(Path(media.args.official).resolve())
        python = media.args.official_python or sys.executable
    log_path = media.work / "child.log"
    start = time.perf_counter()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [python, "-c", _CHILD, kind, *args], stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=child_env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{row} ({kind} {' '.join(args)}) failed (exit {proc.returncode}):\n{log_path.read_text()}")
    load_peak, last_peak = (int(v) * 1024 for v in peak_file.read_text().split())
    return {
        "wall": wall,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "peak": max(load_peak, last_peak),
        "load_peak": load_peak,  # up to the first frame (0: not measured apart)
        "frames_peak": last_peak if load_peak else 0,  # from the first frame on
    }


def remove(path: Path) -> None:
    if path.is_dir():
        for item in path.iterdir():
            item.unlink()
        path.rmdir()
    elif path.exists():
        path.unlink()


# --------------------------------------------------------------------------------------
# The three parts
# --------------------------------------------------------------------------------------


def run_speed(args, media: Media, rows: list[str]) -> list[str]:
    short, long = args.frames
    samples: dict[tuple[str, int], list[dict[str, float]]] = {}
    output = media.work / "out.mp4"
    for run in range(args.runs):
        for row in rows:
            for frames in (short, long):
                log(f"speed: run {run + 1}/{args.runs}, {row}, {frames} frames ...")
                samples.setdefault((row, frames), []).append(run_child(media, row, frames, output))
                remove(output)
    median = {key: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for key, runs in samples.items()}
    per_frame = {row: (median[row, long]["wall"] - median[row, short]["wall"]) / (long - short) for row in rows}
    yardsticks = [r for r in ("baseline", "official") if r in rows]
    headers = ["row", "ms/frame", "sys ms/f", "start s"] + [f"vs {r}" for r in yardsticks]
    lines = []
    for row in rows:
        system = (median[row, long]["sys"] - median[row, short]["sys"]) / (long - short)
        start = median[row, short]["wall"] - short * per_frame[row]
        ratios = [f"{per_frame[r] / per_frame[row]:.2f}x" for r in yardsticks]
        lines.append([row, f"{1000 * per_frame[row]:.0f}", f"{1000 * system:.1f}", f"{start:.1f}", *ratios])
    return [
        f"Speed: {args.config}, {args.size}x{args.size}, whole processes, median of {args.runs} runs on "
        f"{short}- and {long}-frame clips",
        table(headers, lines),
        "ms/frame: wall time per extra frame; sys ms/f: kernel CPU time per extra frame; start s: the "
        "rest (start-up, loading, source encoding); vs X: X's ms/frame over the row's (higher is faster)",
    ]


def run_memory(args, media: Media, rows: list[str]) -> list[str]:
    output = media.work / "out.mp4"
    lines = []
    for row in rows:
        cells = [row]
        for frames in args.memory_frames:
            log(f"memory: {row}, {frames} frames ...")
            result = run_child(media, row, frames, output)
            remove(output)
            frames_peak = f"{result['frames_peak'] / 2**20:.0f}" if result["frames_peak"] else "-"
            cells += [f"{result['peak'] / 2**20:.0f}", frames_peak, f"{result['wall']:.0f}"]
        lines.append(cells)
    headers = ["row"] + [h for n in args.memory_frames for h in (f"peak MiB {n}", f"frames MiB {n}", f"wall s {n}")]
    return [
        f"Peak memory (VmHWM of the process): {args.config}, {args.size}x{args.size}, one run each",
        table(headers, lines),
        "peak: the whole process; frames: the peak from the first frame on (after imports and loading the "
        "model; reanimate rows only)",
    ]


def run_error(args, media: Media) -> list[str]:
    from PIL import Image

    frames = {}
    for row in ("fp32", "bf16"):
        folder = media.work / f"frames_{row}"
        log(f"error: {row}, {args.frames[1]} frames to PNG ...")
        run_child(media, row, args.frames[1], folder)
        frames[row] = np.stack([np.asarray(Image.open(p)) for p in sorted(folder.iterdir())]).astype(np.int16)
        remove(folder)
    difference = np.abs(frames["fp32"] - frames["bf16"])
    return [
        f"Error of bf16 against fp32 ({args.config} with random weights, {args.frames[1]} frames, PNG): "
        f"mean {difference.mean():.2f}/255, 99.9th percentile {np.percentile(difference, 99.9):.0f}/255, "
        f"max {difference.max()}/255"
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child-baseline"]:
        return child_baseline(argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--config", default="vox-256", help="model config name (the official checkout's too)")
    parser.add_argument("--size", type=int, default=256, help="width = height of the synthetic media")
    parser.add_argument("--frames", type=int_list, default="10,40", help="the short and the long clip for the speed")
    parser.add_argument("--runs", type=int, default=5, help="runs per row and clip (medians)")
    parser.add_argument("--rows", default=DEFAULT_ROWS, help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--memory-frames", type=int_list, default="100,1000", help="clip lengths for the peak RSS")
    parser.add_argument("--memory-rows", default="baseline,official,fp32,fp32-b4,bf16", help="rows for the peak RSS")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the children (default: inherited)")
    parser.add_argument("--official", help="a checkout of AliaksandrSiarohin/first-order-model (adds 'official')")
    parser.add_argument("--official-python", help="the interpreter for the official demo (default: this one)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-error", action="store_true")
    parser.add_argument("--workdir", help="keep media, checkpoints and logs here instead of a temporary folder")
    args = parser.parse_args(argv)
    if len(args.frames) != 2 or args.frames[0] >= args.frames[1]:
        parser.error("--frames takes two lengths, short then long")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    memory_rows = [r.strip() for r in args.memory_rows.split(",") if r.strip()]
    unknown = sorted(set(rows + memory_rows) - set(ROWS))
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)} (known: {', '.join(ROWS)})")
    if args.official is None:
        rows = [r for r in rows if r != "official"]
        memory_rows = [r for r in memory_rows if r != "official"]
    elif not (Path(args.official) / "demo.py").is_file():
        parser.error(f"--official {args.official}: no demo.py there (a checkout of first-order-model)")

    threads = args.threads or os.environ.get("OMP_NUM_THREADS") or f"torch default ({torch.get_num_threads()})"
    print(
        f"animate_speed: CPU {cpu_model()}; {bf16_support(torch.device('cpu'))}; {os.cpu_count()} CPUs, "
        f"threads {threads}; torch {torch.__version__}, python {platform.python_version()}; {load()}",
        flush=True,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reanimate-bench-") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        media = Media(args, work)
        parts = [
            (args.skip_speed, lambda: run_speed(args, media, rows)),
            (args.skip_memory, lambda: run_memory(args, media, memory_rows)),
            (args.skip_error, lambda: run_error(args, media)),
        ]
        for skip, part in parts:
            if not skip:
                section = time.perf_counter()
                lines = part()
                print("\n" + "\n".join(lines) + f"\n({time.perf_counter() - section:.0f} s; {load()})", flush=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
