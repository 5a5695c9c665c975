"""``reanimate`` command line. Parses arguments and calls the library; nothing else."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .errors import ReanimateError


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add_model_args(p: argparse.ArgumentParser, checkpoint_required: bool = True) -> None:
    p.add_argument("--checkpoint", required=checkpoint_required,
                   help="model weights: an official FOMM .pth.tar (needs --config) or a reanimate .safetensors")
    p.add_argument("--config", help="model config YAML, or a built-in name such as vox-256")
    p.add_argument("--align-corners", type=_bool, metavar="true|false", default=None,
                   help="grid_sample convention; default from the config (true: as the official "
                        "checkpoints were trained, with PyTorch 1.0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reanimate", description="Bring a still image to life with the motion of a driving video.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("animate", help="animate a source image with a driving video")
    p.add_argument("source", help="source image")
    p.add_argument("driving", help="driving video (mp4/mov/avi/mkv/gif/webm) or folder of frames")
    p.add_argument("-o", "--output", required=True, help="output video file, or folder for PNG frames")
    _add_model_args(p)
    motion = p.add_mutually_exclusive_group()
    motion.add_argument("--relative", dest="relative", action="store_true", default=True,
                        help="transfer motion relative to the first/best driving frame (default)")
    motion.add_argument("--absolute", dest="relative", action="store_false", help="copy absolute keypoint positions")
    p.add_argument("--adapt-scale", action="store_true", help="scale motion by the ratio of keypoint convex-hull areas")
    best = p.add_mutually_exclusive_group()
    best.add_argument("--find-best-frame", action="store_true",
                      help="start from the driving frame whose keypoints best match the source")
    best.add_argument("--best-frame", type=int, metavar="N", help="driving frame N is aligned with the source")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=4, help="driving frames per model call")
    p.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    p.add_argument("--pad", action="store_true", help="letterbox non-square inputs instead of centre-cropping")
    p.add_argument("--fps", type=float, help="frame rate of a driving frame folder (default 25)")
    p.add_argument("--visualize", action="store_true",
                   help="write source | driving+keypoints | result | occlusion side by side")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("convert", help="convert an official FOMM checkpoint to a reanimate .safetensors")
    p.add_argument("checkpoint", help="official .pth.tar")
    p.add_argument("--config", required=True, help="the config it was trained with (path or built-in name)")
    p.add_argument("-o", "--output", required=True, help="output .safetensors")

    p = sub.add_parser("init-checkpoint", help="write a randomly initialised model (for trying the pipeline)")
    p.add_argument("--config", default="vox-256", help="config path or built-in name (default vox-256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="output .safetensors")

    p = sub.add_parser("model-info", help="parameter counts of a config's networks")
    p.add_argument("config", help="config path or built-in name")
    return parser


def _check_safetensors_output(path: str) -> None:
    if Path(path).suffix != ".safetensors":
        raise ReanimateError(f"{path}: the output must end in .safetensors")


def run(args: argparse.Namespace) -> int:
    if args.command == "animate":
        from .pipelines import animate

        result = animate(
            args.source, args.driving, args.output,
            checkpoint=args.checkpoint, config=args.config, align_corners=args.align_corners,
            relative=args.relative, adapt_scale=args.adapt_scale, best_frame=args.best_frame,
            find_best_frame=args.find_best_frame, device=args.device, batch_size=args.batch_size,
            fp16=args.fp16, pad=args.pad, visualize=args.visualize, progress=not args.quiet, fps=args.fps,
        )
        if not args.quiet:
            for note in result.notes:
                print(f"note: {note}", file=sys.stderr)
            print(f"wrote {result.output} ({result.frames} frames, {result.fps:.1f} frames/s, "
                  f"reference frame {result.reference_frame})", file=sys.stderr)
        return 0
    if args.command == "convert":
        from .checkpoint import convert
        from .models import load_config

        _check_safetensors_output(args.output)
        out = convert(args.checkpoint, load_config(args.config), args.output)
        print(f"wrote {out}", file=sys.stderr)
        return 0
    if args.command == "init-checkpoint":
        from .checkpoint import save
        from .models import build_model, load_config

        _check_safetensors_output(args.output)
        model = build_model(load_config(args.config), with_discriminator=True, seed=args.seed)
        out = save(args.output, model, {"note": f"random initialisation, seed {args.seed}"})
        print(f"wrote {out} (random weights, seed {args.seed})", file=sys.stderr)
        return 0
    if args.command == "model-info":
        from .models import build_model, count_parameters, load_config

        model = build_model(load_config(args.config), with_discriminator=True)
        rows = [("kp_detector", model.kp_detector), ("generator", model.generator),
                ("  dense_motion", model.generator.dense_motion_network), ("discriminator", model.discriminator)]
        print(f"{'module':<16} {'parameters':>14}")
        for name, module in rows:
            count = count_parameters(module) if module is not None else 0
            print(f"{name:<16} {count:>14,}")
        return 0
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    try:
        return run(args)
    except ReanimateError as exc:
        print(f"reanimate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reanimate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
