#!/usr/bin/env python
"""Hand-run training benchmark with ground-truth motion (not part of the test suite).

1. ``reanimate make-synthetic`` dataset (the default ``one-class`` preset: 200 train /
   20 test videos of 32 frames at 64x64) in ``WORKDIR/synthetic-64`` unless it is there
   already.
2. The reconstruction protocol (``reanimate reconstruct --gt-flow``) with the freshly
   initialised model (seed of the run): reconstruction L1 before training.
3. ``reanimate train`` with the reduced ``synthetic-64`` config for ``--minutes``
   (default 15) on this machine's CPU (or ``--device cuda``).
4. The same protocol with the trained model (and with the weight average,
   ``model_ema.safetensors``, when the config keeps one: ``train_params.ema_decay``).

Printed: L1 before / after (target: after <= before / 2), flow end-point error of the
dense motion against the ground truth next to the no-motion baseline (target: ratio
>= 2), over all pixels and over pixels visible in the source, and the keypoint
equivariance error. Everything is measured in the same run.

Usage::

    python benchmarks/train_synthetic.py --workdir WORKDIR --minutes 14   # about 16 minutes on 2 cores
    python benchmarks/train_synthetic.py --workdir WORKDIR --minutes 2 --config my.yaml
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from reanimate import checkpoint as ckpt
from reanimate.data import FramesDataset
from reanimate.models import build_model, load_config
from reanimate.pipelines.reconstruct import reconstruct


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def evaluate(model, data: Path, label: str):
    dataset = FramesDataset.from_config(model.config.raw["dataset_params"], is_train=False, root_dir=str(data))
    start = time.perf_counter()
    result = reconstruct(model, dataset, save=None, gt_flow=True, device="auto", progress=False)
    print(f"[{label}] {result.summary()}  ({time.perf_counter() - start:.0f} s)".replace("\n", "\n  "), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path, help="dataset and run folders go here")
    parser.add_argument("--config", default="synthetic-64")
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall time (default 15)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--run", help="run folder name inside --workdir (default: run-<seed>)")
    parser.add_argument(
        "--train-args",
        default="--amp bf16 --channels-last",
        help="more options for reanimate train (default: %(default)s; bf16 is about 1.5x faster than fp32 on CPU)",
    )
    args = parser.parse_args()

    data = args.workdir / "synthetic-64"
    if not (data / "synthetic.json").is_file():
        run([sys.executable, "-m", "reanimate", "make-synthetic", str(data), "-q", "--seed", str(args.seed)])
    config = load_config(args.config)
    before = evaluate(build_model(config, seed=args.seed), data, "initial model")

    run_dir = args.workdir / (args.run or f"run-{args.seed}")
    start = time.perf_counter()
    run(
        [
            sys.executable,
            "-m",
            "reanimate",
            "train",
            "--config",
            args.config,
            "--data",
            str(data),
            "-o",
            str(run_dir),
            "--max-minutes",
            str(args.minutes),
            "--seed",
            str(args.seed),
            "--device",
            args.device,
            "--workers",
            str(args.workers),
            "-q",
            *shlex.split(args.train_args),
        ]
    )
    minutes = (time.perf_counter() - start) / 60
    last = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["checkpoint"]
    folder = run_dir / "checkpoints" / last
    results = {
        "weights": evaluate(ckpt.load(folder / "model.safetensors"), data, f"trained ({last}, {minutes:.1f} min)")
    }
    if (folder / "model_ema.safetensors").is_file():  # train_params.ema_decay
        results["weight average"] = evaluate(
            ckpt.load(folder / "model_ema.safetensors"), data, f"weight average ({last})"
        )
    for label, after in results.items():
        print(f"\nsummary ({label})")
        print(
            f"  reconstruction L1   {before.l1:.4f} -> {after.l1:.4f}   (x{before.l1 / after.l1:.3f} lower; "
            f"target >= 2; no motion {after.no_motion_l1:.4f})"
        )
        print(
            f"  flow EPE            {after.flow_epe:.3f} px vs no motion {after.no_motion_epe:.3f} px   "
            f"(x{after.no_motion_epe / after.flow_epe:.3f} lower; target >= 2)"
        )
        print(
            f"  flow EPE, visible   {after.flow_epe_visible:.3f} px vs no motion {after.no_motion_epe_visible:.3f} px "
            f"(x{after.no_motion_epe_visible / after.flow_epe_visible:.3f})"
        )
        print(f"  kp equivariance     {before.keypoint_equivariance:.3f} -> {after.keypoint_equivariance:.3f} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
