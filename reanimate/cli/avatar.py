"""Head-avatar commands (IMavatar): ``avatar track``, ``avatar fit``, ``avatar render``, ``avatar mesh``."""

from __future__ import annotations

import argparse
import math
import sys

from ..errors import ReanimateError

AVATAR_COMMANDS = ("avatar",)

_SWEEP_OPTIONS = ("expression", "yaw", "pitch", "roll", "jaw")


def _pose_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--expression",
        metavar="NAME=W,...",
        help=f"{what}: expression weights by the rig's names (ICT-FaceKit's ARKit-style shapes such as "
        "jawOpen=0.6,mouthSmile_L=1) or coefficient indices (0=0.5); the rest stay at the neutral's",
    )
    p.add_argument(
        "--yaw", type=float, metavar="D", help="head turn in degrees; > 0 turns the face to the image's right"
    )
    p.add_argument("--pitch", type=float, metavar="D", help="head nod in degrees; > 0 looks up")
    p.add_argument("--roll", type=float, metavar="D", help="head tilt in degrees; > 0 clockwise in the image")
    p.add_argument(
        "--jaw",
        type=float,
        metavar="D",
        help="jaw opening in degrees (default: the canonical opening, 11.5); with ICT-FaceKit it sets jawOpen to match",
    )


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_avatar_commands(sub) -> None:
    p = sub.add_parser(
        "avatar",
        help="head avatars (IMavatar): track a video, fit an avatar to it, render it, extract its mesh",
        description="Implicit morphable head avatars (IMavatar, Zheng et al. 2022): `track` fits a face rig to every "
        "frame of a video of one person, `fit` learns the avatar's geometry, texture and deformation from the "
        "tracked frames, `render` animates it with another video's, a track folder's or chosen parameters, and "
        "`mesh` writes its surface.",
    )
    commands = p.add_subparsers(dest="avatar_command", required=True, metavar="{track,fit,render,mesh}")

    q = commands.add_parser(
        "track",
        help="fit the face rig to every frame of a video: a track folder of crops, masks and rig parameters",
        description="Track VIDEO (a file or frame folder) for `avatar fit`: face-mesh landmarks in every frame, one "
        "square crop for the whole video, foreground masks (MediaPipe's selfie segmentation, or --masks), and the "
        "rig's expression, jaw, head rotation and translation per frame, the person's shape and the camera's focal "
        "length fitted to the landmarks (IMavatar supp. Sec. 2.6). Prints the fit's mean landmark error.",
    )
    q.add_argument("video", metavar="VIDEO", help="video of one person's head (or a folder of frames)")
    q.add_argument("-o", "--output", required=True, metavar="TRACK_DIR", help="track folder to create")
    q.add_argument(
        "--rig",
        default="ict",
        metavar="ict|procedural|FLAME.pkl",
        help="the face rig: ict (ICT-FaceKit, shipped; default) or a FLAME model file (generic_model.pkl, "
        "with --flame-landmarks); procedural is the tests' toy rig",
    )
    q.add_argument("--flame-landmarks", metavar="NPY", help="FLAME's landmark embedding (landmark_embedding.npy)")
    q.add_argument("--size", type=int, default=256, help="side of the square crops in pixels (default 256)")
    q.add_argument(
        "--focal",
        type=float,
        help="the camera's focal length in crop pixels (default: fitted); e.g. another clip's track's, "
        "so that both share one camera",
    )
    q.add_argument(
        "--masks",
        metavar="DIR",
        help="foreground masks instead of the selfie segmentation: a folder of mask images, one per frame in "
        "order, at the video's size (255 = person), e.g. the exact masks of synthetic data",
    )
    q.add_argument("--overwrite", action="store_true", help="replace TRACK_DIR if it exists")
    q.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    q = commands.add_parser(
        "fit",
        help="learn an avatar from a track folder (or continue one with --resume)",
        description="Fit an avatar to TRACK_DIR (from `avatar track`): AVATAR_DIR becomes a training run "
        "(config.yaml, run.json, checkpoints/, log.jsonl) plus avatar.json, what `render` needs besides the "
        "weights. Stop at any time with Ctrl-C, --max-minutes or --max-steps (a checkpoint is written) and continue "
        "with --resume AVATAR_DIR.",
    )
    q.add_argument("track", nargs="?", metavar="TRACK_DIR", help="track folder of `avatar track`")
    q.add_argument("-o", "--output", metavar="AVATAR_DIR", help="avatar folder to create")
    q.add_argument(
        "--resume", metavar="AVATAR_DIR", help="continue this avatar's fit where its last checkpoint left it"
    )
    q.add_argument(
        "--config",
        default=None,
        help="avatar config YAML or built-in name (default avatar/imavatar: the paper's networks and training)",
    )
    q.add_argument(
        "--rig",
        metavar="ict|procedural|FLAME.pkl",
        help="replace the config's rig (it must be the one TRACK_DIR was tracked with)",
    )
    q.add_argument("--flame-landmarks", metavar="NPY", help="FLAME's landmark embedding, with --rig FLAME.pkl")
    q.add_argument("--epochs", type=int, help="number of epochs (default: train_params.num_epochs, 60)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--max-steps", type=int, help="stop after this many steps in total (with a checkpoint)")
    q.add_argument("--max-minutes", type=float, help="stop after this much time (with a checkpoint)")
    q.add_argument("--no-tensorboard", action="store_true", help="log only to AVATAR_DIR/log.jsonl")
    _common_args(q)

    q = commands.add_parser(
        "render",
        help="animate an avatar with a driving video, a track folder, or an expression and head-pose sweep",
        description="Render the avatar of AVATAR_DIR (from `avatar fit`, its latest checkpoint). Its parameters "
        "come from one of: --driving VIDEO (tracked here with the avatar's rig: the driver's expression, jaw and "
        "head rotation; the avatar keeps its shape, its camera and its training video's mean head position); "
        "--track TRACK_DIR (the folder's parameters and camera as tracked: a clip of the same person is "
        "re-rendered); or a sweep from the avatar's neutral (the canonical expression and pose) to --expression, "
        "--yaw, --pitch, --roll and --jaw. Writes a video, or the first frame (a sweep's target) as an image.",
    )
    q.add_argument("avatar", metavar="AVATAR_DIR", help="avatar folder of `avatar fit`")
    q.add_argument("-o", "--output", required=True, help="output video (.mp4, ...) or image (.png, .jpg)")
    q.add_argument("--driving", metavar="VIDEO", help="take the expression and head pose of this video's person")
    q.add_argument("--track", metavar="TRACK_DIR", help="take the parameters and camera of this track folder")
    _pose_args(q, "sweep to")
    q.add_argument(
        "--frames",
        type=int,
        metavar="N",
        help="a sweep's frames (default 25, or 1 for an image); of --driving or --track, only the first N",
    )
    q.add_argument("--fps", type=float, help="frame rate of the video (default: the source's; sweeps 25)")
    q.add_argument("--size", type=int, help="output side in pixels (default: the avatar's training crops')")
    _common_args(q)

    q = commands.add_parser(
        "mesh",
        help="write an avatar's surface as an OBJ mesh (canonical, or posed)",
        description="Extract the surface of the avatar of AVATAR_DIR with marching cubes of its canonical "
        "geometry on a grid over the bounding sphere, and write it as an OBJ (v and f lines) in the rig's units, "
        "without the camera. With --expression, --yaw, --pitch, --roll or --jaw, the canonical surface's vertices "
        "are deformed forward by the learnt deformation and the rig to that expression and pose: how IMavatar "
        "makes its posed meshes (the surface is not re-extracted in the posed space).",
    )
    q.add_argument("avatar", metavar="AVATAR_DIR", help="avatar folder of `avatar fit`")
    q.add_argument("-o", "--output", required=True, help="output mesh (.obj)")
    q.add_argument(
        "--resolution", type=int, default=128, help="grid points per side of the bounding cube (default 128)"
    )
    _pose_args(q, "pose the mesh")
    _common_args(q)


def _sweep_given(args: argparse.Namespace) -> bool:
    return any(getattr(args, name) is not None for name in _SWEEP_OPTIONS)


def _check_positive(value, option: str) -> None:
    if value is not None and not value > 0:
        raise ReanimateError(f"{option} {value}: expected a positive number")


def _check_angles(args: argparse.Namespace) -> None:
    for name in ("yaw", "pitch", "roll", "jaw"):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            raise ReanimateError(f"--{name} {value}: expected a finite number of degrees")


def _train_options(args: argparse.Namespace):
    from ..training.run_options import TrainOptions

    _check_positive(args.max_steps, "--max-steps")
    _check_positive(args.max_minutes, "--max-minutes")
    _check_positive(args.epochs, "--epochs")
    return TrainOptions(
        seed=args.seed,
        num_epochs=args.epochs,
        device=args.device,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        progress=not args.quiet,
        tensorboard=not args.no_tensorboard,
    )


def _run_track(args: argparse.Namespace) -> int:
    from ..pipelines import avatar

    if args.focal is not None:
        _check_positive(args.focal, "--focal")
    result = avatar.track(
        args.video,
        args.output,
        rig=args.rig,
        size=args.size,
        masks=args.masks,
        flame_landmarks=args.flame_landmarks,
        overwrite=args.overwrite,
        progress=not args.quiet,
        focal=args.focal,
    )
    print(
        f"tracked {result.frames} frames ({result.visible} with a face; masks: {result.masks}) to "
        f"{result.folder.path}; fit error: {result.error_px:.2f} px mean landmark distance; "
        f"focal {result.folder.tracking.focal:.1f} px",
        file=sys.stderr,
    )
    return 0


def _run_fit(args: argparse.Namespace) -> int:
    from ..pipelines import avatar

    options = _train_options(args)
    if args.resume:
        given = [f"--{name}" for name in ("config", "rig", "output", "epochs") if getattr(args, name) is not None]
        if args.track or given:
            what = ", ".join((["TRACK_DIR"] if args.track else []) + given)
            raise ReanimateError(f"avatar fit --resume continues with the avatar's own settings; drop {what}")
        result = avatar.resume_fit(args.resume, options)
    else:
        if not args.track or not args.output:
            raise ReanimateError("avatar fit: give TRACK_DIR -o AVATAR_DIR, or --resume AVATAR_DIR")
        result = avatar.fit(
            args.track,
            args.output,
            config=args.config or avatar.DEFAULT_CONFIG,
            rig=args.rig,
            flame_landmarks=args.flame_landmarks,
            options=options,
        )
    state = result.state
    how = "finished" if result.finished else ("interrupted" if result.interrupted else "stopped")
    print(
        f"{how} at epoch {state.epoch}, step {state.step} ({result.seconds:.0f} s); checkpoint: {result.checkpoint}",
        file=sys.stderr,
    )
    return 130 if result.interrupted else 0


def _run_render(args: argparse.Namespace) -> int:
    from ..io import IMAGE_EXTENSIONS
    from ..pipelines import avatar

    sources = [name for name, given in (("--driving", args.driving), ("--track", args.track)) if given]
    if len(sources) > 1:
        raise ReanimateError("avatar render: give one of --driving and --track")
    if sources and _sweep_given(args):
        raise ReanimateError(f"avatar render: --expression and the head angles make a sweep; not with {sources[0]}")
    if not sources and not _sweep_given(args):
        raise ReanimateError(
            "avatar render: give --driving VIDEO, --track TRACK_DIR, or a sweep (--expression, --yaw, --pitch, "
            "--roll, --jaw; --yaw 0 renders the neutral)"
        )
    _check_positive(args.frames, "--frames")
    _check_positive(args.size, "--size")
    _check_positive(args.fps, "--fps")
    _check_angles(args)
    output = avatar.check_render_output(args.output, args.frames)
    still = output.suffix.lower() in IMAGE_EXTENSIONS
    progress = not args.quiet
    loaded = avatar.load_avatar(args.avatar, args.device)
    if args.driving:
        motion = avatar.video_motion(loaded, args.driving, args.frames, progress)
    elif args.track:
        motion = avatar.track_motion(loaded, args.track, args.frames)
    else:
        frames = args.frames or (1 if still else avatar.SWEEP_FRAMES)
        motion = avatar.sweep_motion(
            loaded, args.expression, args.yaw or 0.0, args.pitch or 0.0, args.roll or 0.0, args.jaw, frames
        )
    if args.fps:
        motion = motion._replace(fps=args.fps)
    result = avatar.render(loaded, motion, output, args.size, progress)
    plural = "s" if result.frames > 1 else ""
    print(
        f"wrote {result.output} ({result.frames} frame{plural} at {result.size} px, from {result.source})",
        file=sys.stderr,
    )
    return 0


def _run_mesh(args: argparse.Namespace) -> int:
    from ..pipelines import avatar

    _check_angles(args)
    avatar.check_mesh_output(args.output, args.resolution)
    loaded = avatar.load_avatar(args.avatar, args.device)
    frame = None
    if _sweep_given(args):
        motion = avatar.sweep_motion(
            loaded, args.expression, args.yaw or 0.0, args.pitch or 0.0, args.roll or 0.0, args.jaw, frames=1
        )
        frame = motion.frames
    result = avatar.mesh(loaded, args.output, args.resolution, frame, progress=not args.quiet)
    kind = "posed" if result.posed else "canonical"
    print(
        f"wrote {result.output} ({kind} surface: {len(result.vertices)} vertices, {len(result.faces)} faces)",
        file=sys.stderr,
    )
    return 0


def run_avatar_command(args: argparse.Namespace) -> int:
    run = {"track": _run_track, "fit": _run_fit, "render": _run_render, "mesh": _run_mesh}
    return run[args.avatar_command](args)
