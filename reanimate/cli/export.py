"""``reanimate export``: a FOMM-family checkpoint as ONNX graphs (:mod:`reanimate.export`)."""

from __future__ import annotations

import argparse
import sys

from .common import add_model_args

FORMATS = ("onnx",)


def add_export_command(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a fomm-family checkpoint (FOMM, the motion transformer) to ONNX: keypoints, source "
        "encoder and generator graphs, checked against PyTorch (animate --backend onnxruntime runs it)",
    )
    add_model_args(p)
    p.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (default, opset 17)")
    p.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="new (or empty) folder for the graphs and manifest.json"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier export at DIR (after the new one passed)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def run_export(args: argparse.Namespace) -> int:
    from ..export.onnx import OPSET, export_checkpoint

    result = export_checkpoint(args.checkpoint, args.output, args.config, args.align_corners, args.overwrite)
    if not args.quiet:
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        diffs = ", ".join(f"{name} {diff:.1e}" for name, diff in result.max_abs_diff.items())
        megabytes = sum(result.sizes.values()) / 2**20
        print(
            f"wrote {result.output} (ONNX opset {OPSET}, {megabytes:.1f} MiB, {result.seconds:.1f} s); "
            f"largest difference from PyTorch: {diffs}",
            file=sys.stderr,
        )
    return 0
