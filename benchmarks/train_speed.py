#!/usr/bin/env python
"""Hand-run benchmark of training throughput (not part of the test suite): steps/s of
``reanimate train``'s step (generator + keypoint detector losses, optimizer steps, and
the discriminator step for ``-adv`` configs) in fp32 against mixed precision with
channels_last, measured in the same run on the same batch.

Data loading is left out: one batch of a tiny ``make-synthetic`` dataset at the config's
frame size is reused for every step, so the figures are those of the model arithmetic.

Usage::

    python benchmarks/train_speed.py --config vox-256 --batch-size 16 --device cuda   # GPU: fp32 vs fp16
    python benchmarks/train_speed.py --config synthetic-64 --batch-size 8              # CPU: fp32 vs bf16
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from reanimate.data.synthetic import SyntheticConfig, make_synthetic
from reanimate.models import load_config
from reanimate.training.trainer import Trainer, TrainOptions


def steps_per_second(
    config,
    data: Path,
    run: Path,
    batch_size: int,
    device: str,
    amp: str | None,
    channels_last: bool,
    steps: int,
    warmup: int,
) -> float:
    trainer = Trainer(
        config,
        run,
        TrainOptions(
            data_root=str(data),
            batch_size=batch_size,
            device=device,
            amp=amp,
            channels_last=channels_last,
            progress=False,
            tensorboard=False,
            num_workers=0,
            num_repeats=batch_size,
        ),
    )
    batch = next(iter(trainer._loader(0, 0)))
    for _ in range(warmup):
        trainer.train_step(batch)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="vox-256")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--amp", choices=("bf16", "fp16"), help="default: fp16 on CUDA, bf16 on CPU")
    args = parser.parse_args()

    config = load_config(args.config)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    amp = args.amp or ("fp16" if cuda else "bf16")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        size = config.image_size[0]
        make_synthetic(data, SyntheticConfig(size=size, num_frames=2, num_train=2, num_test=1), progress=False)
        rows = []
        for label, precision, channels_last in (("fp32", None, False), (f"{amp} + channels_last", amp, True)):
            rate = steps_per_second(
                config,
                data,
                Path(tmp) / label.replace(" ", ""),
                args.batch_size,
                args.device,
                precision,
                channels_last,
                args.steps,
                args.warmup,
            )
            rows.append((label, rate))
        device = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
        print(f"{args.config}, batch {args.batch_size}, {device}")
        base = rows[0][1]
        for label, rate in rows:
            print(f"  {label:<24} {rate:6.2f} steps/s  {rate * args.batch_size:7.1f} samples/s  x{rate / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
