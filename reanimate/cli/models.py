"""Commands about model files: ``convert``, ``init-checkpoint``, ``attention``, ``model-info``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ReanimateError
from .common import add_model_args

MODEL_COMMANDS = ("convert", "init-checkpoint", "attention", "model-info")


def add_model_commands(sub) -> None:
    p = sub.add_parser("convert", help="convert an official FOMM checkpoint to a reanimate .safetensors")
    p.add_argument("checkpoint", help="official .pth.tar")
    p.add_argument("--config", required=True, help="the config it was trained with (path or built-in name)")
    p.add_argument("-o", "--output", required=True, help="output .safetensors")

    p = sub.add_parser("init-checkpoint", help="write a randomly initialised model (for trying the pipeline)")
    p.add_argument("--config", default="vox-256", help="config path or built-in name (default vox-256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="output .safetensors")

    p = sub.add_parser(
        "attention",
        help="the motion transformer's attention maps of an image: per layer and "
        "keypoint token, over the image (MoTrans Fig. 3)",
    )
    p.add_argument("source", help="image")
    add_model_args(p)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTDIR",
        help="folder for layerLL_tokenKK.png overlays, grid.png and attention.npz",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--pad", action="store_true", help="letterbox a non-square image instead of centre-cropping")

    p = sub.add_parser("model-info", help="parameter counts and multiply-accumulates of a config's networks")
    p.add_argument("config", help="config path or built-in name")


def check_safetensors_output(path: str) -> None:
    if Path(path).suffix != ".safetensors":
        raise ReanimateError(f"{path}: the output must end in .safetensors")


def run_model_command(args: argparse.Namespace) -> int:
    if args.command == "convert":
        from ..checkpoint import convert
        from ..models import load_config

        check_safetensors_output(args.output)
        out = convert(args.checkpoint, load_config(args.config), args.output)
        print(f"wrote {out}", file=sys.stderr)
        return 0
    if args.command == "init-checkpoint":
        from ..checkpoint import save
        from ..models import build_model, load_config

        check_safetensors_output(args.output)
        model = build_model(load_config(args.config), with_discriminator=True, seed=args.seed)
        out = save(args.output, model, {"note": f"random initialisation, seed {args.seed}"})
        print(f"wrote {out} (random weights, seed {args.seed})", file=sys.stderr)
        return 0
    if args.command == "attention":
        from ..animators.registry import build_animator
        from ..pipelines.attention import save_attention

        animator = build_animator(args.checkpoint, "fomm", args.config, args.align_corners, args.device)
        result = save_attention(animator, args.source, args.output, pad=args.pad)
        layers, tokens = result.attention.shape[:2]
        print(f"wrote {result.output} ({layers} layers x {tokens} tokens)", file=sys.stderr)
        return 0
    if args.command == "model-info":
        from ..animators.registry import family_of, get_family

        family = get_family(family_of(None, args.config))
        if family.model_info is None:
            raise ReanimateError(f"model-info: the {family.name} family has no networks")
        title, rows = family.model_info(args.config)
        print(title)
        print(f"{'module':<16} {'parameters':>14} {'GMACs':>9}")
        for name, params, macs in rows:
            print(f"{name:<16} {params:>14,} {macs / 1e9:>9.2f}")
        return 0
    raise AssertionError(args.command)
