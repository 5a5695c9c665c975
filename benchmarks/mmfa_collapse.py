#!/usr/bin/env python
"""Hand-run: has an MMFA model's expression path or canonical keypoints collapsed?

    python benchmarks/mmfa_collapse.py --data DIR CHECKPOINT [CHECKPOINT ...] [--videos 6] [--every 16]

For frames of the first ``--videos`` training videos of ``DIR`` (every ``--every``-th
frame), each checkpoint's expression features ``f_delta``, deformations ``delta`` and
canonical keypoints are compared across frames and identities. A collapsed model has a
minimum cosine similarity between features near 1, a deformation that does not vary over
frames, and the same canonical keypoints for every identity (``L_Exp`` and ``L_C`` have
these as trivial minima).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reanimate.animators.mmfa import load_mmfa
from reanimate.io import list_frame_files, read_image


def frames(data: Path, videos: int, every: int, size: tuple[int, int]) -> torch.Tensor:
    folders = sorted(p for p in (data / "train").iterdir() if p.is_dir())[:videos]
    images = []
    for folder in folders:
        for path in list_frame_files(folder)[::every]:
            image = read_image(path)
            image = F.interpolate(
                torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255,
                size=size,
                mode="area",
            )
            images.append(image[0])
    return torch.stack(images)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--data", required=True, type=Path, help="a `reanimate make-heads` folder (its train/)")
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--every", type=int, default=16)
    args = parser.parse_args(argv)
    print(f"{'checkpoint':<48} {'min cos f':>10} {'|delta|':>8} {'delta std':>10} {'kp spread':>10} {'kp std':>8}")
    for checkpoint in args.checkpoints:
        model = load_mmfa(checkpoint)
        x = frames(args.data, args.videos, args.every, model.config.image_size)
        with torch.no_grad():
            feature = model.expression_encoder(x)
            canonical = model.canonical(x)
            delta = model.expression_decoder(feature, canonical)
        cos = F.cosine_similarity(feature[:, None], feature[None], dim=-1)
        print(
            f"{str(checkpoint)[-48:]:<48} {cos.min():>10.4f} {delta.abs().mean():>8.4f} {delta.std(0).mean():>10.4f} "
            f"{canonical.std(1).mean():>10.3f} {canonical.std(0).mean():>8.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
