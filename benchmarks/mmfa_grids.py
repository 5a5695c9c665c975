#!/usr/bin/env python
"""Hand-run: frame grids of head edits and expression interpolation, to look at.

    python benchmarks/mmfa_grids.py --data DIR --out DIR [--checkpoint MMFA] [--vae VAE]
        [--pairs 0,1,2] [--scale 2]

For each chosen pair of a ``reanimate make-heads --pairs`` set (its source: a neutral,
held-out identity), with the MMFA checkpoint and with the zero-shot default:

* ``edits_<model>.png``: rows yaw -30..30, pitch -20..20, roll -30..30 (``reanimate
  edit``), one block of three rows per identity; the middle column is the unedited
  rendering.
* ``interpolation.png`` (MMFA with ``--vae``): per identity, the source's expression
  walking the VAE latent to the expression of the pair's driving frame with the widest
  open jaw (``reanimate interpolate``, 7 steps), then that driving frame itself.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from reanimate.heads.dataset import load_truth
from reanimate.io import list_frame_files
from reanimate.pipelines.edit import edit
from reanimate.pipelines.expressions import interpolate

SWEEPS = {
    "yaw": (-30, -20, -10, 0, 10, 20, 30),
    "pitch": (-20, -10, -5, 0, 5, 10, 20),
    "roll": (-30, -20, -10, 0, 10, 20, 30),
}


def load(path: Path, side: int) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB").resize((side, side), Image.BICUBIC))


def grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


def edit_rows(source: Path, options: dict, side: int, tmp: Path) -> list[list[np.ndarray]]:
    rows = []
    for attribute, values in SWEEPS.items():
        row = []
        for value in values:
            out = tmp / f"{attribute}{value}.png"
            edit(source, out, progress=False, **{attribute: float(value)}, **options)
            row.append(load(out, side))
        rows.append(row)
    return rows


def widest_jaw_frame(pair: Path) -> Path:
    truth = load_truth(pair / "truth.npz")
    names = [str(n) for n in truth["expression_names"]]
    weights = truth["driving_expression"][:, names.index("jawOpen")]
    return list_frame_files(pair / "driving")[int(np.argmax(weights))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--checkpoint", type=Path, help="an MMFA model.safetensors")
    parser.add_argument("--vae", type=Path, help="a train-vae run folder or VAE file (for the interpolation)")
    parser.add_argument("--pairs", default="0,1,2", help="pair numbers (default 0,1,2)")
    parser.add_argument("--side", type=int, default=128, help="cell size in pixels (default 128)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    pairs = [args.data / "pairs" / f"pair_{int(i):05d}" for i in args.pairs.split(",")]
    models = {"zero-shot": {}}
    if args.checkpoint:
        models["mmfa"] = {"checkpoint": args.checkpoint}
    with tempfile.TemporaryDirectory(prefix="mmfa_grids_") as tmp:
        tmp = Path(tmp)
        for name, options in models.items():
            rows = []
            for pair in pairs:
                work = tmp / f"{name}_{pair.name}"
                work.mkdir()
                rows += edit_rows(pair / "source.png", options, args.side, work)
            path = args.out / f"edits_{name}.png"
            Image.fromarray(grid(rows)).save(path)
            print(f"wrote {path} (rows: yaw {SWEEPS['yaw']}, pitch {SWEEPS['pitch']}, roll {SWEEPS['roll']})")
        if args.checkpoint and args.vae:
            rows = []
            for pair in pairs:
                target = widest_jaw_frame(pair)
                out = tmp / f"interp_{pair.name}"
                interpolate(pair / "source.png", pair / "source.png", target, out, checkpoint=args.checkpoint,
                            vae=args.vae, frames=7, progress=False)  # fmt: skip
                rows.append([load(f, args.side) for f in list_frame_files(out)] + [load(target, args.side)])
            path = args.out / "interpolation.png"
            Image.fromarray(grid(rows)).save(path)
            print(f"wrote {path} (source's expression -> the widest-jaw driving frame's, then that frame)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
