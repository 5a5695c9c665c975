#!/usr/bin/env python
"""Hand-run diagnostic: where a checkpoint's flow and reconstruction errors lie on a
``reanimate make-synthetic`` test set (the reconstruction protocol, first frame as source).

Pixels are split by the ground truth saved beside each video:

* *visible* (the point is shown by the source) or *hidden* (uncovered background, or
  brought in by the camera), for videos with and without camera motion;
* on still-camera videos, visible pixels that do not move (static background) and those
  that do; static background also by distance (pixels) to the nearest non-static pixel.

For each part: the flow end-point error (pixels) against no motion, and the share of
pixels. Then the reconstruction L1 on visible and hidden pixels of the generator's
output, of the source warped by the model's own flow, and of the source warped by the
true flow: what L1 a perfect flow would leave.

Usage::

    python benchmarks/flow_breakdown.py --checkpoint RUN/checkpoints/step-N/model.safetensors \\
        --data WORKDIR/synthetic-64
"""

from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np
import torch
from _synthetic_set import load_model, parse_args, videos
from scipy.ndimage import distance_transform_edt

from reanimate.animators.base import Transfer
from reanimate.animators.fomm import FommAnimator
from reanimate.geometry import end_point_error, identity_flow, resize_flow, warp

STATIC_PX = 0.25  # a pixel whose true motion is below this is static
DISTANCE_BANDS = ((0, 2), (2, 4), (4, 8), (8, None))


def main() -> int:
    args = parse_args(__doc__.split("\n\n")[0])
    pipeline = FommAnimator(load_model(args), device="cpu")
    count = 0
    epe = defaultdict(list)  # part -> [(model, no motion, share)] per video
    l1 = defaultdict(list)  # (what, visible?) -> [L1] per video
    for video, x, truth_np, visible in videos(args):
        count += 1
        h, w = x.shape[2:]
        with torch.no_grad():
            state = pipeline.encode(x[:1])
            result = pipeline.generate(state, pipeline.detect(x), None, Transfer(relative=False), driving=x)
        flow = resize_flow(result.deformation.float(), (h, w))
        truth = torch.from_numpy(truth_np)
        error = end_point_error(flow, truth, reduction="none").numpy()
        still = end_point_error(identity_flow(len(truth), h, w), truth, reduction="none").numpy()
        camera = "camera" if video["camera_motion"] else "still camera"
        parts = {f"{camera}, visible": visible, f"{camera}, hidden": ~visible}
        if not video["camera_motion"]:
            static = visible & (still < STATIC_PX)
            parts["still camera, visible static"] = static
            parts["still camera, visible moving"] = visible & ~static
            distance = np.stack([distance_transform_edt(s) for s in static])
            for low, high in DISTANCE_BANDS:
                band = static & (distance > low) & (distance <= (high if high is not None else np.inf))
                parts[f"  static, {low}-{high if high is not None else ''} px from moving"] = band
        for name, mask in parts.items():
            if mask.any():
                epe[name].append((error[mask].mean(), still[mask].mean(), mask.mean()))
        source = x[:1].expand_as(x)
        outputs = {
            "generator output": result.prediction.float(),
            "source warped by its flow": warp(source, flow),
            "source warped by the true flow": warp(source, truth),
        }
        for what, image in outputs.items():
            pixel_l1 = (image - x).abs().mean(1).numpy()
            l1[what, True].append(pixel_l1[visible].mean())
            if (~visible).any():
                l1[what, False].append(pixel_l1[~visible].mean())

    print(f"{args.checkpoint} on {count} {args.split} videos of {args.data}")
    print(f"{'flow EPE (px)':44s} {'model':>7s} {'no motion':>9s} {'share':>6s}")
    for name, rows in epe.items():
        model_epe, still_epe, share = np.mean(rows, axis=0)
        print(f"{name:44s} {model_epe:7.3f} {still_epe:9.3f} {share:6.3f}")
    print(f"{'reconstruction L1':44s} {'visible':>7s} {'hidden':>9s}")
    for what in ("generator output", "source warped by its flow", "source warped by the true flow"):
        print(f"{what:44s} {np.mean(l1[what, True]):7.4f} {np.mean(l1[what, False]):9.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
