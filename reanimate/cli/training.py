"""Training and dataset commands: ``train``, ``reconstruct``, ``animate-pairs``, ``make-synthetic``."""

from __future__ import annotations

import argparse
import sys

from ..errors import ReanimateError
from .common import add_model_args

TRAINING_COMMANDS = ("train", "reconstruct", "animate-pairs", "make-synthetic")


def add_training_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model on a dataset in the official FOMM layout")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--config", help="config path or built-in name, with train_params and dataset_params")
    start.add_argument("--resume", metavar="RUN_DIR", help="continue a run exactly where its last checkpoint left it")
    p.add_argument("-o", "--output", metavar="RUN_DIR", help="new run folder: checkpoints, logs, TensorBoard")
    p.add_argument("--data", metavar="ROOT", help="dataset root (default: dataset_params.root_dir of the config)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, help="global batch size (default: train_params.batch_size)")
    p.add_argument("--epochs", type=int, help="number of epochs (default: train_params.num_epochs)")
    p.add_argument(
        "--num-repeats", type=int, help="passes over the videos per epoch (default: train_params.num_repeats)"
    )
    p.add_argument(
        "--init",
        metavar="FILE",
        help="fine-tune from a checkpoint: official .pth.tar (of the same config) or reanimate .safetensors",
    )
    p.add_argument(
        "--vgg-weights",
        metavar="FILE",
        help="ImageNet VGG-19 in torchvision's format (vgg19-dcbb9e9d.pth) for the perceptual loss; "
        "default: the torch hub cache, else a random-init VGG-19 (with a warning)",
    )
    p.add_argument(
        "--vgg-face-weights",
        metavar="FILE",
        help="VGG-Face (vgg_face_dag.pth, Albanie's PyTorch conversion) for MMFA's VGG-Face term "
        "(train_params.loss_weights.vgg_face); without it that term is left out, with a warning",
    )
    p.add_argument(
        "--backbone-weights",
        metavar="FILE",
        help="ImageNet HRNet classification checkpoint (hrnetv2_w32_imagenet_pretrained.pth) for the "
        "motion transformer's backbone, as the paper trains",
    )
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="mixed precision (fp16: CUDA)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (faster on CUDA)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--workers", type=int, help="data-loading processes per rank (default: train_params.num_workers)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps in total (with a checkpoint)")
    p.add_argument("--max-minutes", type=float, help="stop after this much time (with a checkpoint)")
    p.add_argument("--no-tensorboard", action="store_true", help="log only to RUN_DIR/log.jsonl")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    def evaluation_args(p):
        add_model_args(p)
        p.add_argument("--data", metavar="ROOT", help="dataset root (default: dataset_params.root_dir of the config)")
        p.add_argument("-o", "--output", metavar="OUTDIR", help="folder for the videos and metrics.json")
        p.add_argument("--device", default="auto", help="auto, cpu or cuda")
        p.add_argument("--batch-size", type=int, default=8, help="frames per model call")
        p.add_argument("--fps", type=float, default=25.0, help="frame rate of the written videos")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "reconstruct", help="reconstruct each test video from its first frame and report mean L1 (the paper's protocol)"
    )
    evaluation_args(p)
    p.add_argument(
        "--format",
        choices=("mp4", "png", "none"),
        default="mp4",
        help="how predictions are saved in OUTDIR (default mp4; none: metrics only)",
    )
    p.add_argument(
        "--gt-flow",
        action="store_true",
        help="also report flow end-point error against the ground truth of a make-synthetic dataset, "
        "and keypoint equivariance error (FOMM models)",
    )
    p.add_argument("--num-videos", type=int, help="only the first N test videos")

    p = sub.add_parser(
        "animate-pairs", help="animate (source, driving) pairs of the test videos (the official 'animate' mode)"
    )
    evaluation_args(p)
    p.add_argument(
        "--pairs",
        metavar="CSV",
        help="pairs list with source and driving columns (default: dataset_params.pairs_list; none: random pairs)",
    )
    p.add_argument("--num-pairs", type=int, help="default: animate_params.num_pairs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random pairs")

    p = sub.add_parser(
        "make-synthetic",
        help="write the synthetic benchmark: articulated textured puppets with "
        "the exact ground-truth motion of every frame",
    )
    p.add_argument("output", metavar="OUT", help="dataset folder to create (train/, test/, flow files)")
    p.add_argument("--size", type=int, default=64, help="frame size in pixels (default 64)")
    p.add_argument("--frames", type=int, default=32, help="frames per video (default 32)")
    p.add_argument("--train", type=int, default=200, help="training videos (default 200)")
    p.add_argument("--test", type=int, default=20, help="test videos (default 20)")
    p.add_argument(
        "--camera-motion-fraction",
        type=float,
        default=0.3,
        metavar="F",
        help="fraction of videos whose camera moves too (default 0.3)",
    )
    p.add_argument(
        "--preset",
        choices=("one-class", "mixed"),
        default="one-class",
        help="one-class (default): one puppet per video, all of one build and look, the training "
        "benchmark's set; mixed: one or two puppets of 2-4 limbs with random looks",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def load_for_evaluation(args):
    """The animator of ``--checkpoint`` (whichever family it names) and the test split
    of the dataset its config describes (``--data`` replaces the root)."""
    from ..animators.registry import build_animator
    from ..data.frames import FramesDataset
    from ..pipelines.reconstruct import config_document

    animator = build_animator(args.checkpoint, "auto", args.config, args.align_corners, args.device)
    params = config_document(animator).get("dataset_params") or {}
    dataset = FramesDataset.from_config(params, is_train=False, root_dir=args.data)
    return animator, dataset


def run_training_command(args: argparse.Namespace) -> int:
    if args.command == "train":
        from ..training.trainer import TrainOptions, resume, train

        options = TrainOptions(
            seed=args.seed,
            data_root=args.data,
            batch_size=args.batch_size,
            num_epochs=args.epochs,
            num_repeats=args.num_repeats,
            amp=None if args.amp == "none" else args.amp,
            channels_last=args.channels_last,
            vgg_weights=args.vgg_weights,
            vgg_face_weights=args.vgg_face_weights,
            init=args.init,
            backbone_weights=args.backbone_weights,
            device=args.device,
            num_workers=args.workers,
            max_steps=args.max_steps,
            max_minutes=args.max_minutes,
            progress=not args.quiet,
            tensorboard=not args.no_tensorboard,
        )
        if args.resume:
            result = resume(args.resume, options)
        else:
            if not args.output:
                raise ReanimateError("train: give the run folder with -o RUN_DIR")
            result = train(args.config, args.output, options)
        state = result.state
        how = "finished" if result.finished else ("interrupted" if result.interrupted else "stopped")
        print(
            f"{how} at epoch {state.epoch}, step {state.step} ({result.seconds:.0f} s); "
            f"checkpoint: {result.checkpoint}",
            file=sys.stderr,
        )
        return 130 if result.interrupted else 0
    if args.command == "make-synthetic":
        from ..data.synthetic import SyntheticConfig, make_synthetic

        config = SyntheticConfig.preset(
            args.preset,
            size=args.size,
            num_frames=args.frames,
            num_train=args.train,
            num_test=args.test,
            seed=args.seed,
            camera_motion_fraction=args.camera_motion_fraction,
        )
        out = make_synthetic(args.output, config, progress=not args.quiet, overwrite=args.overwrite)
        print(f"wrote {out}", file=sys.stderr)
        return 0
    animator, dataset = load_for_evaluation(args)
    if args.command == "reconstruct":
        from ..pipelines.reconstruct import reconstruct

        save = None if args.format == "none" else args.format
        if save and not args.output:
            raise ReanimateError("reconstruct: give -o OUTDIR, or --format none to only print the metrics")
        result = reconstruct(
            animator,
            dataset,
            args.output,
            save=save,
            gt_flow=args.gt_flow,
            num_videos=args.num_videos,
            batch_size=args.batch_size,
            fps=args.fps,
            progress=not args.quiet,
        )
        print(result.summary())
        return 0
    from ..pipelines.animate_pairs import animate_pairs

    if not args.output:
        raise ReanimateError("animate-pairs: give the output folder with -o OUTDIR")
    if args.pairs:
        dataset.pairs_list = args.pairs
    result = animate_pairs(
        animator,
        dataset,
        args.output,
        num_pairs=args.num_pairs,
        seed=args.seed,
        batch_size=args.batch_size,
        fps=args.fps,
        progress=not args.quiet,
    )
    print(f"wrote {len(result.outputs)} videos ({result.frames} frames) to {args.output}", file=sys.stderr)
    return 0
