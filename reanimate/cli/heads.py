"""``make-heads``: the synthetic talking-head dataset (ICT-FaceKit heads, exact ground truth)."""

from __future__ import annotations

import argparse
import os
import sys

HEAD_COMMANDS = ("make-heads",)


def add_head_commands(sub) -> None:
    p = sub.add_parser(
        "make-heads",
        help="write synthetic talking heads (ICT-FaceKit) with exact pose, expression, landmarks and flow",
        description="Render synthetic talking heads with their exact ground truth: train/ and test/ frame "
        "folders (the layout train, reconstruct and evaluate read) with flow into frame 0 and per-frame pose, "
        "expression, gaze and landmarks; --pairs adds cross-identity (source, driving, ground-truth output) "
        "triples; --subject adds one person's training and test clips for head avatars.",
    )
    p.add_argument("output", metavar="OUT", help="dataset folder to create")
    p.add_argument("--size", type=int, default=256, help="frame size in pixels, 64-512 (default 256)")
    p.add_argument("--frames", type=int, default=64, help="frames per video and per pair (default 64)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the motion (default 25)")
    p.add_argument("--train", type=int, default=40, help="training videos (default 40)")
    p.add_argument("--test", type=int, default=10, help="test videos, stronger motion (default 10)")
    p.add_argument("--pairs", type=int, default=0, help="cross-identity triples to write (default 0)")
    p.add_argument(
        "--pairs-profile",
        choices=("train", "test"),
        default="train",
        help="motion of the pairs' driving videos: train (default, milder) or test (stronger)",
    )
    p.add_argument("--subject", action="store_true", help="also write one person's train and test clips")
    p.add_argument(
        "--subject-frames",
        type=int,
        nargs=2,
        default=(300, 150),
        metavar=("TRAIN", "TEST"),
        help="frames of the subject's clips (default 300 150)",
    )
    p.add_argument("--orthographic", action="store_true", help="scaled orthographic camera instead of perspective")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="rendering processes (default: 2 or fewer)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run_head_command(args: argparse.Namespace) -> int:
    from ..heads.dataset import HeadsConfig, make_heads

    config = HeadsConfig(
        size=args.size,
        frames=args.frames,
        fps=args.fps,
        train=args.train,
        test=args.test,
        pairs=args.pairs,
        pairs_profile=args.pairs_profile,
        subject=args.subject,
        subject_frames=tuple(args.subject_frames),
        seed=args.seed,
        orthographic=args.orthographic,
    )
    out = make_heads(
        args.output, config, workers=max(1, args.workers), progress=not args.quiet, overwrite=args.overwrite
    )
    print(f"wrote {out}", file=sys.stderr)
    return 0
