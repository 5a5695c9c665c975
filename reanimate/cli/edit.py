"""``reanimate edit``."""

from __future__ import annotations

import argparse
import sys

from ..errors import ReanimateError
from .common import add_model_args


def parse_translate(text: str) -> tuple[float, float]:
    """``"X,Y"`` -> two floats; anything else is a one-line error."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise ReanimateError(
            f"--translate expects X,Y such as 0.1,-0.05 (fractions of the crop width), got {text!r}"
        ) from None
    return x, y


def add_edit_command(sub) -> None:
    p = sub.add_parser(
        "edit",
        help="turn, scale or move the head of a face in an image, or give it another face's expression",
        description="Edit the head of the largest face in SOURCE (MMFA paper Sec. 4.3). Angles are changes from "
        "the source's pose, in degrees: yaw > 0 turns the face towards the image's right, pitch > 0 looks up, "
        "roll > 0 tilts clockwise. Writes an image, or with --frames N a video sweeping from the source to the edit.",
    )
    p.add_argument("source", help="source image")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg), or video (.mp4) with --frames N")
    p.add_argument("--yaw", type=float, default=0.0, metavar="D", help="turn left/right by D degrees (default 0)")
    p.add_argument("--pitch", type=float, default=0.0, metavar="D", help="nod up/down by D degrees (default 0)")
    p.add_argument("--roll", type=float, default=0.0, metavar="D", help="tilt by D degrees, clockwise > 0 (default 0)")
    p.add_argument("--scale", type=float, default=1.0, metavar="F", help="multiply the head's size by F (default 1)")
    p.add_argument(
        "--translate",
        default="0,0",
        metavar="X,Y",
        help="move the head by fractions of the face crop's width, x right, y down (default 0,0); "
        "a negative X is written --translate=-0.05,0",
    )
    p.add_argument("--expression-from", metavar="IMAGE", help="take the expression of the face in IMAGE")
    p.add_argument(
        "--expression-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="0: the source's expression, 1 (default): IMAGE's, in between blends, beyond exaggerates",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=1,
        metavar="N",
        help="write an N-frame video from the source's head to the edited one (default 1: an image)",
    )
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the video (default 25)")
    p.add_argument(
        "--model",
        default="auto",
        metavar="FAMILY",
        help="auto (default): the family the checkpoint names, else the zero-shot face-landmark animator "
        "(landmarks); the model must be able to pose a head (landmarks, mmfa)",
    )
    add_model_args(p, checkpoint_required=False)
    p.add_argument(
        "--increase",
        type=float,
        metavar="F",
        help="crop margin per side, as a fraction of the face size (default: the model's)",
    )
    p.add_argument(
        "--face-index", type=int, metavar="I", help="edit the I-th largest face of the source (default: the largest)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run_edit(args: argparse.Namespace) -> int:
    from ..pipelines.edit import edit

    result = edit(
        args.source,
        args.output,
        checkpoint=args.checkpoint,
        model=args.model,
        config=args.config,
        align_corners=args.align_corners,
        device=args.device,
        fp16=args.fp16,
        progress=not args.quiet,
        yaw=args.yaw,
        pitch=args.pitch,
        roll=args.roll,
        scale=args.scale,
        translate=parse_translate(args.translate),
        expression_from=args.expression_from,
        expression_scale=args.expression_scale,
        frames=args.frames,
        fps=args.fps,
        increase=args.increase,
        face_index=args.face_index,
    )
    if not args.quiet:
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"wrote {result.output} ({result.frames} frame{'s' if result.frames > 1 else ''})", file=sys.stderr)
    return 0
