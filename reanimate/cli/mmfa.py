"""MMFA's expression commands: ``canonical``, ``train-vae``, ``interpolate`` (paper Sec. 3.3, 4.3-4.4)."""

from __future__ import annotations

import argparse
import sys

MMFA_COMMANDS = ("canonical", "train-vae", "interpolate")


def _model_args(p: argparse.ArgumentParser, checkpoint_required: bool) -> None:
    p.add_argument(
        "--checkpoint",
        required=checkpoint_required,
        help="MMFA weights (.safetensors written by `reanimate train`, carrying its config)",
    )
    p.add_argument("--config", help="MMFA config YAML or built-in name (default: the one in the checkpoint)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_mmfa_commands(sub) -> None:
    p = sub.add_parser(
        "canonical",
        help="render the canonical face of a portrait (MMFA: no rotation, translation or expression)",
        description="Render the canonical face of the largest face in SOURCE with an MMFA model (paper Fig. 7): "
        "its canonical keypoints at its own scale, without rotation, translation or expression, pasted back "
        "into the source.",
    )
    p.add_argument("source", help="source image")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg)")
    _model_args(p, checkpoint_required=False)

    p = sub.add_parser(
        "train-vae",
        help="train MMFA's expression VAE on the expression features of a dataset's training videos",
        description="Extract the expression feature f_delta of a seeded choice of frames of every training video of "
        "DATASET with an MMFA model, cache them in RUN/features.safetensors, and train the latent VAE of the "
        "MMFA paper (Sec. 3.3, Eq. 13) on them; its checkpoints go to RUN/checkpoints.",
    )
    p.add_argument("--checkpoint", required=True, help="MMFA weights (.safetensors)")
    p.add_argument("--data", metavar="DATASET", help="dataset folder (FOMM layout); not needed to --resume")
    p.add_argument("-o", "--output", required=True, metavar="RUN", help="run folder (new, or the run to --resume)")
    p.add_argument("--steps", type=int, help="training steps in all (default 20000; on --resume, the run's)")
    p.add_argument("--batch-size", type=int, help="features per step (default 256; on --resume, the run's)")
    p.add_argument(
        "--frames-per-video", type=int, default=32, metavar="N", help="frames per training video (default 32)"
    )
    p.add_argument("--resume", action="store_true", help="reuse RUN's cached features and continue its VAE")
    p.add_argument("--config", help="MMFA config YAML or built-in name (default: the one in the checkpoint)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "interpolate",
        help="a portrait's expression walking MMFA's VAE latent space from one face's expression to another's",
        description="Write a video of the largest face in SOURCE, with its own pose, whose expression moves along "
        "the straight line in the expression VAE's latent space from the expression of the face in EXPR_A to that "
        "of the face in EXPR_B (MMFA paper Sec. 4.4, Fig. 8).",
    )
    p.add_argument("source", help="source image")
    p.add_argument("expression_a", metavar="EXPR_A", help="image of the face whose expression starts the video")
    p.add_argument("expression_b", metavar="EXPR_B", help="image of the face whose expression ends it")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, ...), or a folder of PNG frames")
    p.add_argument(
        "--vae", required=True, metavar="VAE", help="expression VAE: a `train-vae` run folder or a model.safetensors"
    )
    p.add_argument("--frames", type=int, default=25, metavar="N", help="frames, both expressions included (25)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the video (default 25)")
    _model_args(p, checkpoint_required=True)


def run_mmfa_command(args: argparse.Namespace) -> int:
    from ..pipelines import expressions

    progress = not args.quiet
    if args.command == "canonical":
        result = expressions.canonical(
            args.source,
            args.output,
            checkpoint=args.checkpoint,
            config=args.config,
            device=args.device,
            progress=progress,
        )
    elif args.command == "interpolate":
        result = expressions.interpolate(
            args.source,
            args.expression_a,
            args.expression_b,
            args.output,
            checkpoint=args.checkpoint,
            vae=args.vae,
            frames=args.frames,
            fps=args.fps,
            config=args.config,
            device=args.device,
            progress=progress,
        )
    elif args.command == "train-vae":
        run = expressions.train_vae(
            args.checkpoint,
            args.output,
            args.data,
            steps=args.steps,
            batch_size=args.batch_size,
            frames_per_video=args.frames_per_video,
            resume=args.resume,
            config=args.config,
            device=args.device,
            progress=progress,
        )
        if not args.quiet:
            cached = "cached" if run.features_reused else "extracted"
            print(
                f"trained the expression VAE on {run.features} {cached} features to step {run.step} "
                f"({run.seconds:.0f} s); give `interpolate --vae` this file or {run.run_dir}:",
                file=sys.stderr,
            )
        print(run.vae)
        return 0
    else:
        raise AssertionError(args.command)
    if not args.quiet:
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
    print(f"wrote {result.output} ({result.frames} frame{'s' if result.frames > 1 else ''})", file=sys.stderr)
    return 0
