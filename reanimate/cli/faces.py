"""Face commands: ``crop`` and ``faces``."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ReanimateError

FACE_COMMANDS = ("crop", "faces")


def parse_shape(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH such as 256,256, got {text!r}") from None
    return height, width


def add_face_commands(sub) -> None:
    p = sub.add_parser(
        "crop", help="cut one square face video per face track out of a video (as the official FOMM crop-video.py)"
    )
    p.add_argument("video", help="input video")
    p.add_argument(
        "-o", "--output", required=True, metavar="OUTDIR", help="folder for the face videos, <name>_track<i>.mp4"
    )
    p.add_argument(
        "--increase",
        type=float,
        default=0.1,
        help="margin around the face on each side, as a fraction of its size (default 0.1)",
    )
    p.add_argument(
        "--image-shape", type=parse_shape, default=(256, 256), metavar="H,W", help="output frame size (default 256,256)"
    )
    p.add_argument(
        "--min-frames", type=int, default=150, metavar="N", help="skip faces seen for fewer frames (default 150)"
    )
    p.add_argument(
        "--iou",
        type=float,
        default=0.25,
        help="box overlap that links a face to the same track in the next frame (default 0.25)",
    )
    p.add_argument(
        "--smooth",
        type=float,
        default=2.0,
        metavar="FRAMES",
        help="smooth the crop box over time, Gaussian sigma in frames (default 2; 0: off)",
    )
    p.add_argument(
        "--max-gap",
        type=int,
        default=0,
        metavar="N",
        help="frames a face may be missed without ending its track (default 0)",
    )
    p.add_argument("--max-faces", type=int, default=5, metavar="N", help="faces looked for per frame (default 5)")
    p.add_argument(
        "--fixed",
        action="store_true",
        help="one fixed crop per track (the official script's behaviour) instead of following the face",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("faces", help="face boxes, head pose and 478 landmarks of every frame, as JSON lines")
    p.add_argument("input", help="image, video or folder of frames")
    p.add_argument("-o", "--output", metavar="OUT.jsonl", help="write here instead of printing")
    p.add_argument("--max-faces", type=int, default=5, metavar="N", help="faces looked for per frame (default 5)")


def run_face_command(args: argparse.Namespace) -> int:
    if args.command == "crop":
        from ..pipelines.crop import crop_video

        paths = crop_video(
            args.video,
            args.output,
            increase=args.increase,
            image_shape=args.image_shape,
            min_frames=args.min_frames,
            iou_threshold=args.iou,
            smooth=args.smooth,
            max_gap=args.max_gap,
            max_faces=args.max_faces,
            fixed=args.fixed,
            progress=not args.no_progress,
        )
        for path in paths:
            print(path)
        return 0
    from ..pipelines.faces import describe_faces, save_face_records

    if args.max_faces < 1:
        raise ReanimateError(f"--max-faces must be at least 1, got {args.max_faces}")
    if args.output:
        frames = save_face_records(args.input, args.output, max_faces=args.max_faces)
        print(f"wrote {args.output} ({frames} frames)", file=sys.stderr)
        return 0
    for record in describe_faces(args.input, max_faces=args.max_faces):
        print(json.dumps(record, separators=(",", ":")))
    return 0
