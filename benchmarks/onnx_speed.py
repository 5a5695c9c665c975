#!/usr/bin/env python
"""Hand-run benchmark: ONNX Runtime against PyTorch on the CPU for the FOMM family
(not part of the test suite).

For each config (default: ``fomm/vox-256`` and ``motrans/vox-256`` at 256x256) a model
with random weights (``build_model(config, seed=0)``: speed does not depend on the
weights' values) is exported with ``reanimate.export.onnx.export_model`` into a
temporary folder, then each step of animation is timed on both backends with the same
inputs and the same number of threads (ONNX Runtime's intra-op threads = PyTorch's
``torch.get_num_threads()``, so ``OMP_NUM_THREADS=1`` gives both one thread):

* ``keypoints``: the motion estimator on one driving frame;
* ``generator``: dense motion and the generator's decoder for one frame, against the
  source encoding computed once;
* ``frame``: the two together, what every driving frame costs;
* ``source``: the source encoder (once per source, not per frame).

Medians of ``--repeat`` runs after ``--warmup`` runs, in milliseconds per frame, and the
ratio onnxruntime / torch (below 1: ONNX Runtime is faster). The CPU model (``lscpu``),
the thread count and the load average are printed: timings are noisy when other
processes share the CPUs.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/onnx_speed.py
    python benchmarks/onnx_speed.py --configs vox-256 --repeat 20 --batch 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _machine import cpu_model  # noqa: E402

from reanimate.export.onnx import export_model  # noqa: E402
from reanimate.export.runtime import OnnxFommModel  # noqa: E402
from reanimate.models import build_model, load_config  # noqa: E402


def median_ms(fn, warmup: int, repeat: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


@torch.inference_mode()
def bench_config(name: str, batch: int, warmup: int, repeat: int) -> dict[str, tuple[float, float]]:
    """``{step: (torch ms, onnxruntime ms)}`` per frame for one config."""
    model = build_model(load_config(name), seed=0).eval()
    h, w = model.config.image_size
    g = torch.Generator().manual_seed(0)
    source = torch.rand(1, 3, h, w, generator=g)
    driving = torch.rand(batch, 3, h, w, generator=g)
    with tempfile.TemporaryDirectory() as folder:
        with torch.inference_mode(False):
            result = export_model(model, Path(folder) / "export", name)
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in result.max_abs_diff.items())
        print(f"{name}: exported in {result.seconds:.1f} s; largest difference from PyTorch: {diffs}", flush=True)
        runtime = OnnxFommModel(result.output)

        kp_source = model.kp_detector(source)
        kp_driving = model.kp_detector(driving)
        encoding = model.generator.encode(source)
        ort_encoding = runtime.encode(source)
        steps = {
            "keypoints": (lambda: model.kp_detector(driving), lambda: runtime.detect(driving)),
            "generator": (
                lambda: model.generator.decode(encoding, kp_driving, kp_source),
                lambda: runtime.generate(ort_encoding, kp_source, kp_driving),
            ),
            "source": (lambda: model.generator.encode(source), lambda: runtime.encode(source)),
        }
        times = {}
        for step, (torch_fn, ort_fn) in steps.items():
            per = 1 if step == "source" else batch
            times[step] = (median_ms(torch_fn, warmup, repeat) / per, median_ms(ort_fn, warmup, repeat) / per)
        times["frame"] = tuple(times["keypoints"][i] + times["generator"][i] for i in range(2))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["fomm/vox-256", "motrans/vox-256"])
    parser.add_argument("--batch", type=int, default=1, help="driving frames per call (default 1)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    import onnxruntime

    one, five, _ = os.getloadavg()
    print(f"CPU: {cpu_model()}; {torch.get_num_threads()} thread(s) for both backends", flush=True)
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}", flush=True)
    print(f"load average before: {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs", flush=True)
    rows = []
    for name in args.configs:
        for step, (t, o) in bench_config(name, args.batch, args.warmup, args.repeat).items():
            rows.append((name, step, t, o))
    one, five, _ = os.getloadavg()
    print(f"load average after: {one:.1f} (1 min), {five:.1f} (5 min)")
    print(f"\nmedian ms per frame (batch {args.batch}; source: once per source)")
    print(f"{'config':<18} {'step':<10} {'torch':>9} {'onnxruntime':>12} {'ratio':>7}")
    for name, step, t, o in rows:
        print(f"{name:<18} {step:<10} {t:>9.1f} {o:>12.1f} {o / t:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
