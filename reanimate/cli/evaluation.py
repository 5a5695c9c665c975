"""``reanimate evaluate``."""

from __future__ import annotations

import argparse
import sys

from ..errors import ReanimateError
from .common import add_model_args


def add_evaluation_command(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="the papers' evaluation protocols (same-identity reconstruction, "
        "cross-identity animation) as a report table; or --compare runs",
    )
    p.add_argument("protocol", nargs="?", choices=("same-identity", "cross-identity"))
    p.add_argument("--data", metavar="ROOT", help="same-identity: the test videos (ROOT/test or ROOT)")
    p.add_argument("--pairs", metavar="CSV", help="cross-identity: source,driving paths (relative to the CSV)")
    p.add_argument(
        "--model",
        default="auto",
        metavar="FAMILY",
        help="auto (default): the family --checkpoint names (fomm, mmfa), else the zero-shot landmark "
        "animator (landmarks). A model with trained weights animates the test videos' whole frames; "
        "same-identity uses absolute transfer, cross-identity relative",
    )
    add_model_args(p, checkpoint_required=False)
    p.add_argument(
        "--generated",
        metavar="DIR",
        help="score videos made already (DIR/<name>.mp4 or DIR/<name>/ frames) instead of running a model",
    )
    p.add_argument("-o", "--output", metavar="OUTDIR", help="report folder: metrics.json, per_video.csv, report.md")
    p.add_argument("--name", help="run name in the tables (default: the OUTDIR name)")
    p.add_argument(
        "--kind",
        choices=("face", "body"),
        default="face",
        help="landmarks to measure: face (478-point mesh, dlib 68 and identity) or body (33 pose points)",
    )
    p.add_argument("--no-identity", action="store_true", help="skip the dlib identity embeddings (AED, CSIM)")
    p.add_argument("--cache", metavar="DIR", help="feature cache shared between runs (default OUTDIR/cache)")
    p.add_argument("--num-videos", type=int, help="only the first N videos or pairs")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex")
    p.add_argument(
        "--lpips-backbone",
        metavar="FILE",
        help="torchvision ImageNet weights of the LPIPS trunk (alexnet-owt-7be5be79.pth or vgg16-397923af.pth)",
    )
    p.add_argument("--lpips-heads", metavar="FILE", help="the lpips package's linear heads (weights/v0.1/alex.pth)")
    p.add_argument("--fid-weights", metavar="FILE", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--compare", nargs="+", metavar="RUN", help="print the tables of these report folders side by side")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run_evaluation_command(args: argparse.Namespace) -> int:
    from ..pipelines.evaluate import Networks, compare, evaluate

    if args.compare:
        print(compare(args.compare))
        return 0
    if not args.protocol:
        raise ReanimateError("evaluate: give a protocol (same-identity or cross-identity) or --compare RUN ...")
    if not args.output:
        raise ReanimateError("evaluate: give the report folder with -o OUTDIR")
    networks = Networks()
    if bool(args.lpips_backbone) != bool(args.lpips_heads):
        raise ReanimateError("evaluate: LPIPS needs both --lpips-backbone and --lpips-heads")
    if args.lpips_backbone:
        from ..evaluation.lpips import load_lpips

        networks.lpips = load_lpips(args.lpips_backbone, args.lpips_heads, net=args.lpips_net)
    if args.fid_weights:
        from ..evaluation.fid import load_fid_inception

        networks.fid = load_fid_inception(args.fid_weights)
    pipeline = None
    if args.generated is None:
        from ..pipelines.animate import build_pipeline

        pipeline = build_pipeline(args.checkpoint, args.model, args.config, args.align_corners, args.device)
    elif args.checkpoint:
        raise ReanimateError("evaluate: --generated scores existing videos; drop --checkpoint")
    result = evaluate(
        args.protocol,
        args.output,
        data=args.data,
        pairs=args.pairs,
        pipeline=pipeline,
        generated=args.generated,
        name=args.name,
        kind=args.kind,
        identity=not args.no_identity,
        networks=networks,
        cache_dir=args.cache,
        num_videos=args.num_videos,
        progress=not args.quiet,
    )
    from ..pipelines.evaluate import markdown_table

    print(markdown_table([result]))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
