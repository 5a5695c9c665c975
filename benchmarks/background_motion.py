#!/usr/bin/env python
"""Hand-run diagnostic: does a checkpoint's background motion predictor follow the camera?

For each test video of a ``reanimate make-synthetic`` set whose camera moves, it compares
the global affine motion that ``generator.bg_predictor(first frame, frame t)`` predicts
with the ground-truth backward flow saved beside the video, over all pixels (the
background covers most of each frame), next to no motion. Also prints the predicted
affine at the middle frame. A predictor that learned nothing stays at the identity
and scores as no motion.

Usage::

    python benchmarks/background_motion.py --checkpoint RUN/checkpoints/step-N/model.safetensors \
        --data WORKDIR/synthetic-64
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from _synthetic_set import load_model, parse_args, videos

from reanimate.geometry import coordinate_grid, end_point_error, identity_flow
from reanimate.models.background import affine_motion


def main() -> int:
    args = parse_args(__doc__.split("\n\n")[0])
    model = load_model(args)
    predictor = model.generator.bg_predictor
    if predictor is None or not predictor.predicts:
        print(f"{args.checkpoint}: the model has no background motion predictor")
        return 1
    if predictor.fc is not None:
        print(f"fc weights: largest |w| {predictor.fc.weight.abs().max().item():.4f}")
    rows = []
    for video, x, truth, _ in videos(args, camera_only=True):  # truth: (T, H, W, 2) source coordinates in [-1, 1]
        with torch.no_grad():
            affine = predictor(x[:1], x)
        h, w = x.shape[2:]
        truth = torch.from_numpy(truth)
        predicted = affine_motion(coordinate_grid((h, w)), affine)
        error = end_point_error(predicted[1:], truth[1:]).item()
        still = end_point_error(identity_flow(len(truth) - 1, h, w), truth[1:]).item()
        rows.append((error, still))
        middle = affine[len(x) // 2].double().numpy().round(3).tolist()
        print(
            f"{video['name']}: predicted {error:.2f} px, no motion {still:.2f} px; affine at t={len(x) // 2}: {middle}"
        )
    if rows:
        error, still = np.mean(rows, axis=0)
        print(f"mean over {len(rows)} camera videos: predicted {error:.2f} px, no motion {still:.2f} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
