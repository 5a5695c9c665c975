"""``reanimate`` command line. Parses arguments and calls the library; nothing else."""

from __future__ import annotations

import argparse
import json
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
    p.add_argument("--model", choices=("auto", "landmarks", "fomm"), default="auto",
                   help="auto (default): --checkpoint if given, else the zero-shot face-landmark "
                        "animator, which needs no weights")
    _add_model_args(p, checkpoint_required=False)
    motion = p.add_mutually_exclusive_group()
    motion.add_argument("--relative", dest="relative", action="store_true", default=True,
                        help="transfer motion relative to the first/best driving frame (default)")
    motion.add_argument("--absolute", dest="relative", action="store_false", help="copy absolute keypoint positions")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--adapt-scale", dest="adapt_scale", action="store_true", default=None,
                       help="scale motion by the ratio of keypoint convex-hull areas (default for the landmark model)")
    scale.add_argument("--no-adapt-scale", dest="adapt_scale", action="store_false")
    best = p.add_mutually_exclusive_group()
    best.add_argument("--find-best-frame", action="store_true",
                      help="start from the driving frame whose face landmarks (or keypoints) best match the source")
    best.add_argument("--best-frame", type=int, metavar="N", help="driving frame N is aligned with the source")
    faces = p.add_argument_group("faces")
    faces.add_argument("--crop", choices=("auto", "none"), default="auto",
                       help="auto (default): crop the face for face models, animate the crop, paste it back")
    faces.add_argument("--paste-back", type=_bool, metavar="true|false", default=None,
                       help="blend the animated face into the full-size source (default: true when cropping)")
    faces.add_argument("--increase", type=float, metavar="F",
                       help="crop margin per side, as a fraction of the face size (default 0.45 for the "
                            "landmark animator, 0.1 for FOMM)")
    faces.add_argument("--face-index", type=int, metavar="I",
                       help="animate the I-th largest face of the source (default: the largest)")
    faces.add_argument("--max-missing", type=float, default=0.5, metavar="F",
                       help="fail if more than this fraction of driving frames has no face (default 0.5)")
    p.add_argument("--smooth", choices=("one-euro", "kalman"),
                   help="filter driving keypoints over time against jitter")
    p.add_argument("--stats", action="store_true", help="print frames, speed per stage and keypoint jitter")
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

    p = sub.add_parser("attention", help="the motion transformer's attention maps of an image: per layer and "
                                         "keypoint token, over the image (MoTrans Fig. 3)")
    p.add_argument("source", help="image")
    _add_model_args(p)
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="folder for layerLL_tokenKK.png overlays, grid.png and attention.npz")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--pad", action="store_true", help="letterbox a non-square image instead of centre-cropping")

    p = sub.add_parser("model-info", help="parameter counts and multiply-accumulates of a config's networks")
    p.add_argument("config", help="config path or built-in name")
    _add_face_commands(sub)
    _add_training_commands(sub)
    _add_evaluation_command(sub)
    return parser


def _add_evaluation_command(sub) -> None:
    p = sub.add_parser("evaluate", help="the papers' evaluation protocols (same-identity reconstruction, "
                                        "cross-identity animation) as a report table; or --compare runs")
    p.add_argument("protocol", nargs="?", choices=("same-identity", "cross-identity"))
    p.add_argument("--data", metavar="ROOT", help="same-identity: the test videos (ROOT/test or ROOT)")
    p.add_argument("--pairs", metavar="CSV", help="cross-identity: source,driving paths (relative to the CSV)")
    p.add_argument("--model", choices=("auto", "landmarks", "fomm"), default="auto",
                   help="auto (default): --checkpoint if given, else the zero-shot landmark animator")
    _add_model_args(p, checkpoint_required=False)
    p.add_argument("--generated", metavar="DIR",
                   help="score videos made already (DIR/<name>.mp4 or DIR/<name>/ frames) instead of running a model")
    p.add_argument("-o", "--output", metavar="OUTDIR", help="report folder: metrics.json, per_video.csv, report.md")
    p.add_argument("--name", help="run name in the tables (default: the OUTDIR name)")
    p.add_argument("--kind", choices=("face", "body"), default="face",
                   help="landmarks to measure: face (478-point mesh, dlib 68 and identity) or body (33 pose points)")
    p.add_argument("--no-identity", action="store_true", help="skip the dlib identity embeddings (AED, CSIM)")
    p.add_argument("--cache", metavar="DIR", help="feature cache shared between runs (default OUTDIR/cache)")
    p.add_argument("--num-videos", type=int, help="only the first N videos or pairs")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex")
    p.add_argument("--lpips-backbone", metavar="FILE",
                   help="torchvision ImageNet weights of the LPIPS trunk (alexnet-owt-7be5be79.pth or vgg16-397923af.pth)")
    p.add_argument("--lpips-heads", metavar="FILE", help="the lpips package's linear heads (weights/v0.1/alex.pth)")
    p.add_argument("--fid-weights", metavar="FILE", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--compare", nargs="+", metavar="RUN", help="print the tables of these report folders side by side")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _run_evaluation_command(args: argparse.Namespace) -> int:
    from .pipelines.evaluate import Networks, compare, evaluate

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
        from .evaluation.lpips import load_lpips

        networks.lpips = load_lpips(args.lpips_backbone, args.lpips_heads, net=args.lpips_net)
    if args.fid_weights:
        from .evaluation.fid import load_fid_inception

        networks.fid = load_fid_inception(args.fid_weights)
    pipeline = None
    if args.generated is None:
        from .pipelines.animate import build_pipeline

        pipeline = build_pipeline(args.checkpoint, args.model, args.config, args.align_corners, args.device)
    elif args.checkpoint:
        raise ReanimateError("evaluate: --generated scores existing videos; drop --checkpoint")
    result = evaluate(args.protocol, args.output, data=args.data, pairs=args.pairs, pipeline=pipeline,
                      generated=args.generated, name=args.name, kind=args.kind, identity=not args.no_identity,
                      networks=networks, cache_dir=args.cache, num_videos=args.num_videos,
                      progress=not args.quiet)
    from .pipelines.evaluate import markdown_table

    print(markdown_table([result]))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _add_training_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model on a dataset in the official FOMM layout")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--config", help="config path or built-in name, with train_params and dataset_params")
    start.add_argument("--resume", metavar="RUN_DIR", help="continue a run exactly where its last checkpoint left it")
    p.add_argument("-o", "--output", metavar="RUN_DIR", help="new run folder: checkpoints, logs, TensorBoard")
    p.add_argument("--data", metavar="ROOT", help="dataset root (default: dataset_params.root_dir of the config)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, help="global batch size (default: train_params.batch_size)")
    p.add_argument("--epochs", type=int, help="number of epochs (default: train_params.num_epochs)")
    p.add_argument("--num-repeats", type=int, help="passes over the videos per epoch (default: train_params.num_repeats)")
    p.add_argument("--init", metavar="FILE",
                   help="fine-tune from a checkpoint: official .pth.tar (of the same config) or reanimate .safetensors")
    p.add_argument("--vgg-weights", metavar="FILE",
                   help="ImageNet VGG-19 in torchvision's format (vgg19-dcbb9e9d.pth) for the perceptual loss; "
                        "default: the torch hub cache, else a random-init VGG-19 (with a warning)")
    p.add_argument("--backbone-weights", metavar="FILE",
                   help="ImageNet HRNet classification checkpoint (hrnetv2_w32_imagenet_pretrained.pth) for the "
                        "motion transformer's backbone, as the paper trains")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="mixed precision (fp16: CUDA)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (faster on CUDA)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--workers", type=int, help="data-loading processes per rank (default: train_params.num_workers)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps in total (with a checkpoint)")
    p.add_argument("--max-minutes", type=float, help="stop after this much time (with a checkpoint)")
    p.add_argument("--no-tensorboard", action="store_true", help="log only to RUN_DIR/log.jsonl")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    def evaluation_args(p):
        _add_model_args(p)
        p.add_argument("--data", metavar="ROOT", help="dataset root (default: dataset_params.root_dir of the config)")
        p.add_argument("-o", "--output", metavar="OUTDIR", help="folder for the videos and metrics.json")
        p.add_argument("--device", default="auto", help="auto, cpu or cuda")
        p.add_argument("--batch-size", type=int, default=8, help="frames per model call")
        p.add_argument("--fps", type=float, default=25.0, help="frame rate of the written videos")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("reconstruct", help="reconstruct each test video from its first frame and report mean L1 "
                                           "(the paper's protocol)")
    evaluation_args(p)
    p.add_argument("--format", choices=("mp4", "png", "none"), default="mp4",
                   help="how predictions are saved in OUTDIR (default mp4; none: metrics only)")
    p.add_argument("--gt-flow", action="store_true",
                   help="also report flow end-point error against the ground truth of a make-synthetic dataset, "
                        "and keypoint equivariance error")
    p.add_argument("--num-videos", type=int, help="only the first N test videos")

    p = sub.add_parser("animate-pairs", help="animate (source, driving) pairs of the test videos "
                                             "(the official 'animate' mode)")
    evaluation_args(p)
    p.add_argument("--pairs", metavar="CSV", help="pairs list with source and driving columns "
                                                   "(default: dataset_params.pairs_list; none: random pairs)")
    p.add_argument("--num-pairs", type=int, help="default: animate_params.num_pairs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random pairs")

    p = sub.add_parser("make-synthetic", help="write the synthetic benchmark: articulated textured puppets with "
                                              "the exact ground-truth motion of every frame")
    p.add_argument("output", metavar="OUT", help="dataset folder to create (train/, test/, flow files)")
    p.add_argument("--size", type=int, default=64, help="frame size in pixels (default 64)")
    p.add_argument("--frames", type=int, default=32, help="frames per video (default 32)")
    p.add_argument("--train", type=int, default=200, help="training videos (default 200)")
    p.add_argument("--test", type=int, default=20, help="test videos (default 20)")
    p.add_argument("--camera-motion-fraction", type=float, default=0.3, metavar="F",
                   help="fraction of videos whose camera moves too (default 0.3)")
    p.add_argument("--preset", choices=("one-class", "mixed"), default="one-class",
                   help="one-class (default): one puppet per video, all of one build and look, the training "
                        "benchmark's set; mixed: one or two puppets of 2-4 limbs with random looks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _load_for_evaluation(args):
    from . import checkpoint as ckpt
    from .data.frames import FramesDataset
    from .models import load_config

    config = load_config(args.config) if args.config else None
    model = ckpt.load(args.checkpoint, config, align_corners=args.align_corners)
    params = model.config.raw.get("dataset_params") or {}
    dataset = FramesDataset.from_config(params, is_train=False, root_dir=args.data)
    return model, dataset


def _run_training_command(args: argparse.Namespace) -> int:
    if args.command == "train":
        from .training.trainer import TrainOptions, resume, train

        options = TrainOptions(
            seed=args.seed, data_root=args.data, batch_size=args.batch_size, num_epochs=args.epochs,
            num_repeats=args.num_repeats, amp=None if args.amp == "none" else args.amp,
            channels_last=args.channels_last, vgg_weights=args.vgg_weights, init=args.init,
            backbone_weights=args.backbone_weights, device=args.device,
            num_workers=args.workers, max_steps=args.max_steps, max_minutes=args.max_minutes,
            progress=not args.quiet, tensorboard=not args.no_tensorboard,
        )
        if args.resume:
            result = resume(args.resume, options)
        else:
            if not args.output:
                raise ReanimateError("train: give the run folder with -o RUN_DIR")
            result = train(args.config, args.output, options)
        state = result.state
        how = "finished" if result.finished else ("interrupted" if result.interrupted else "stopped")
        print(f"{how} at epoch {state.epoch}, step {state.step} ({result.seconds:.0f} s); "
              f"checkpoint: {result.checkpoint}", file=sys.stderr)
        return 130 if result.interrupted else 0
    if args.command == "make-synthetic":
        from .data.synthetic import SyntheticConfig, make_synthetic

        config = SyntheticConfig.preset(args.preset, size=args.size, num_frames=args.frames, num_train=args.train,
                                        num_test=args.test, seed=args.seed,
                                        camera_motion_fraction=args.camera_motion_fraction)
        out = make_synthetic(args.output, config, progress=not args.quiet, overwrite=args.overwrite)
        print(f"wrote {out}", file=sys.stderr)
        return 0
    model, dataset = _load_for_evaluation(args)
    if args.command == "reconstruct":
        from .pipelines.reconstruct import reconstruct

        save = None if args.format == "none" else args.format
        if save and not args.output:
            raise ReanimateError("reconstruct: give -o OUTDIR, or --format none to only print the metrics")
        result = reconstruct(model, dataset, args.output, save=save, gt_flow=args.gt_flow,
                             num_videos=args.num_videos, device=args.device, batch_size=args.batch_size,
                             fps=args.fps, progress=not args.quiet)
        print(result.summary())
        return 0
    from .pipelines.animate_pairs import animate_pairs

    if not args.output:
        raise ReanimateError("animate-pairs: give the output folder with -o OUTDIR")
    if args.pairs:
        dataset.pairs_list = args.pairs
    result = animate_pairs(model, dataset, args.output, num_pairs=args.num_pairs, seed=args.seed,
                           device=args.device, batch_size=args.batch_size, fps=args.fps, progress=not args.quiet)
    print(f"wrote {len(result.outputs)} videos ({result.frames} frames) to {args.output}", file=sys.stderr)
    return 0


def _shape(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH such as 256,256, got {text!r}") from None
    return height, width


def _add_face_commands(sub) -> None:
    p = sub.add_parser("crop", help="cut one square face video per face track out of a video "
                                    "(as the official FOMM crop-video.py)")
    p.add_argument("video", help="input video")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="folder for the face videos, <name>_track<i>.mp4")
    p.add_argument("--increase", type=float, default=0.1,
                   help="margin around the face on each side, as a fraction of its size (default 0.1)")
    p.add_argument("--image-shape", type=_shape, default=(256, 256), metavar="H,W",
                   help="output frame size (default 256,256)")
    p.add_argument("--min-frames", type=int, default=150, metavar="N",
                   help="skip faces seen for fewer frames (default 150)")
    p.add_argument("--iou", type=float, default=0.25,
                   help="box overlap that links a face to the same track in the next frame (default 0.25)")
    p.add_argument("--smooth", type=float, default=2.0, metavar="FRAMES",
                   help="smooth the crop box over time, Gaussian sigma in frames (default 2; 0: off)")
    p.add_argument("--max-gap", type=int, default=0, metavar="N",
                   help="frames a face may be missed without ending its track (default 0)")
    p.add_argument("--max-faces", type=int, default=5, metavar="N", help="faces looked for per frame (default 5)")
    p.add_argument("--fixed", action="store_true",
                   help="one fixed crop per track (the official script's behaviour) instead of following the face")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("faces", help="face boxes, head pose and 478 landmarks of every frame, as JSON lines")
    p.add_argument("input", help="image, video or folder of frames")
    p.add_argument("-o", "--output", metavar="OUT.jsonl", help="write here instead of printing")
    p.add_argument("--max-faces", type=int, default=5, metavar="N", help="faces looked for per frame (default 5)")


def _run_face_command(args: argparse.Namespace) -> int:
    if args.command == "crop":
        from .pipelines.crop import crop_video

        paths = crop_video(args.video, args.output, increase=args.increase, image_shape=args.image_shape,
                           min_frames=args.min_frames, iou_threshold=args.iou, smooth=args.smooth,
                           max_gap=args.max_gap, max_faces=args.max_faces, fixed=args.fixed,
                           progress=not args.no_progress)
        for path in paths:
            print(path)
        return 0
    from .pipelines.faces import describe_faces, save_face_records

    if args.max_faces < 1:
        raise ReanimateError(f"--max-faces must be at least 1, got {args.max_faces}")
    if args.output:
        frames = save_face_records(args.input, args.output, max_faces=args.max_faces)
        print(f"wrote {args.output} ({frames} frames)", file=sys.stderr)
        return 0
    for record in describe_faces(args.input, max_faces=args.max_faces):
        print(json.dumps(record, separators=(",", ":")))
    return 0


def _check_safetensors_output(path: str) -> None:
    if Path(path).suffix != ".safetensors":
        raise ReanimateError(f"{path}: the output must end in .safetensors")


def run(args: argparse.Namespace) -> int:
    if args.command == "animate":
        from .pipelines import animate

        result = animate(
            args.source, args.driving, args.output,
            checkpoint=args.checkpoint, model=args.model, config=args.config, align_corners=args.align_corners,
            device=args.device, fp16=args.fp16, progress=not args.quiet, fps=args.fps,
            relative=args.relative, adapt_scale=args.adapt_scale, best_frame=args.best_frame,
            find_best_frame=args.find_best_frame, batch_size=args.batch_size, pad=args.pad,
            visualize=args.visualize, crop=args.crop, paste_back=args.paste_back, increase=args.increase,
            face_index=args.face_index, smooth=args.smooth, max_missing=args.max_missing,
        )
        if not args.quiet:
            for note in result.notes:
                print(f"note: {note}", file=sys.stderr)
            print(f"wrote {result.output} ({result.frames} frames, {result.fps:.1f} frames/s, "
                  f"reference frame {result.reference_frame})", file=sys.stderr)
        if args.stats:
            stages = ", ".join(f"{k} {1000 * v / max(result.frames, 1):.1f}" for k, v in result.timings.items())
            jitter = ", ".join(f"{k} {v:.5f}" for k, v in result.jitter.items())
            print(f"stats: {result.frames} frames in {result.seconds:.2f} s ({result.fps:.1f} frames/s); "
                  f"ms per frame: {stages}; jitter (mean keypoint acceleration): {jitter}; "
                  f"frames without a face: {result.missing_faces}")
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
    if args.command == "attention":
        from .pipelines.animate import AnimationPipeline
        from .pipelines.attention import save_attention

        pipeline = AnimationPipeline.from_checkpoint(args.checkpoint, args.config, args.align_corners, args.device)
        result = save_attention(pipeline, args.source, args.output, pad=args.pad)
        layers, tokens = result.attention.shape[:2]
        print(f"wrote {result.output} ({layers} layers x {tokens} tokens)", file=sys.stderr)
        return 0
    if args.command == "model-info":
        from .models import load_config
        from .models.complexity import model_report

        config = load_config(args.config)
        h, w = config.image_size
        print(f"{args.config} ({config.motion_estimator}) at {h}x{w}")
        print(f"{'module':<16} {'parameters':>14} {'GMACs':>9}")
        for name, params, macs in model_report(config):
            print(f"{name:<16} {params:>14,} {macs / 1e9:>9.2f}")
        return 0
    if args.command in ("crop", "faces"):
        return _run_face_command(args)
    if args.command == "evaluate":
        return _run_evaluation_command(args)
    if args.command in ("train", "reconstruct", "animate-pairs", "make-synthetic"):
        return _run_training_command(args)
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
