"""Shared by the hand-run diagnostics that read a checkpoint and a ``make-synthetic`` set."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from reanimate import checkpoint as ckpt
from reanimate.data.synthetic import load_flow
from reanimate.io import open_frames


def parse_args(description: str) -> argparse.Namespace:
    """``--checkpoint``, ``--data`` (a make-synthetic folder) and ``--split``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path, help="a make-synthetic folder (synthetic.json)")
    parser.add_argument("--split", default="test")
    return parser.parse_args()


def load_model(args: argparse.Namespace):
    return ckpt.load(args.checkpoint).eval()


def videos(
    args: argparse.Namespace, camera_only: bool = False
) -> Iterator[tuple[dict, torch.Tensor, np.ndarray, np.ndarray]]:
    """Each video of the split: its ``synthetic.json`` entry, frames ``(T, 3, H, W)`` in
    [0, 1], true flow ``(T, H, W, 2)`` and visibility ``(T, H, W)``."""
    entries = json.loads((args.data / "synthetic.json").read_text())["videos"][args.split]
    for video in entries:
        if camera_only and not video["camera_motion"]:
            continue
        folder = args.data / args.split / video["name"]
        with open_frames(folder) as reader:
            frames = np.stack(list(reader))
        flow, visible = load_flow(folder)
        yield video, torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255, flow, visible
