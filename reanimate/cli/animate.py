"""``reanimate animate``."""

from __future__ import annotations

import argparse
import sys

from ..io.writing import DEFAULT_CRF, DEFAULT_PRESET, X264_PRESETS
from ..motion import HEAD_ATTRIBUTES
from ..precision import PRECISIONS
from .common import add_model_args, animator_threads, parse_bool


def parse_transfer(text: str) -> tuple[str, ...]:
    """``"rotation,expression"`` -> the head attributes named (one-line error for unknown
    names, listing the choices)."""
    from ..pipelines.animate import head_attributes

    return head_attributes(text)


def add_animate_command(sub) -> None:
    p = sub.add_parser("animate", help="animate a source image with a driving video (or image)")
    p.add_argument(
        "source",
        help="source image, or a video: each of its frames keeps its own head motion and takes the driver's "
        "expression (dubbing; the default animator or mmfa)",
    )
    p.add_argument(
        "driving",
        help="driving video (mp4/mov/avi/mkv/gif/webm), folder of frames, or a still image (the source "
        "takes its pose and expression: one output frame)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output video file, or folder for PNG frames; an image file (.png, .jpg) for a still driving image",
    )
    add_model_choice(p)
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing, non-empty frames folder at the output path"
    )
    motion = p.add_mutually_exclusive_group()
    motion.add_argument(
        "--relative",
        dest="relative",
        action="store_true",
        default=True,
        help="transfer motion relative to the first/best driving frame (default)",
    )
    motion.add_argument("--absolute", dest="relative", action="store_false", help="copy absolute keypoint positions")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument(
        "--adapt-scale",
        dest="adapt_scale",
        action="store_true",
        default=None,
        help="scale motion by the ratio of keypoint convex-hull areas (default for the landmark model)",
    )
    scale.add_argument("--no-adapt-scale", dest="adapt_scale", action="store_false")
    p.add_argument(
        "--transfer",
        default=",".join(HEAD_ATTRIBUTES),
        metavar="ATTRS",
        help="which of the driver's head attributes to transfer, a comma-separated subset of "
        f"{','.join(HEAD_ATTRIBUTES)} (default: all); the others stay the source's. Needs a model "
        "that separates them (landmarks, mmfa)",
    )
    add_retarget_args(p)
    best = p.add_mutually_exclusive_group()
    best.add_argument(
        "--find-best-frame",
        action="store_true",
        help="start from the driving frame whose face landmarks (or keypoints) best match the source",
    )
    best.add_argument("--best-frame", type=int, metavar="N", help="driving frame N is aligned with the source")
    faces = p.add_argument_group("faces")
    faces.add_argument(
        "--crop",
        choices=("auto", "none"),
        default="auto",
        help="auto (default): crop the face for face models, animate the crop, paste it back",
    )
    faces.add_argument(
        "--paste-back",
        type=parse_bool,
        metavar="true|false",
        default=None,
        help="blend the animated face into the full-size source (default: true when cropping)",
    )
    faces.add_argument(
        "--increase",
        type=float,
        metavar="F",
        help="crop margin per side, as a fraction of the face size (default 0.45 for the "
        "landmark animator, 0.1 for FOMM)",
    )
    add_face_index_arg(faces)
    faces.add_argument(
        "--faces",
        choices=("one", "all"),
        default="one",
        help="one (default): the largest face (or --face-index); all: every face of a group photo, "
        "each animated by the same driver and pasted back",
    )
    faces.add_argument(
        "--max-missing",
        type=float,
        default=0.5,
        metavar="F",
        help="fail if more than this fraction of driving frames has no face (default 0.5)",
    )
    add_face_kind_arg(faces)
    add_smooth_arg(p)
    p.add_argument("--stats", action="store_true", help="print frames, speed per stage and keypoint jitter")
    add_device_arg(p)
    add_backend_arg(p)
    p.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="driving frames per model call (default: 1 on the CPU, where larger batches are slower; 4 on CUDA)",
    )
    add_precision_args(p)
    p.add_argument("--pad", action="store_true", help="letterbox non-square inputs instead of centre-cropping")
    p.add_argument("--fps", type=float, help="frame rate of a driving frame folder (default 25)")
    p.add_argument(
        "--visualize", action="store_true", help="write source | driving+keypoints | result | occlusion side by side"
    )
    encoding = p.add_argument_group("video encoding")
    encoding.add_argument(
        "--crf",
        type=int,
        default=DEFAULT_CRF,
        metavar="N",
        help=f"quality of a video output, lower is better: H.264 0..51 (default {DEFAULT_CRF}, visually "
        "near-lossless), .webm 0..63",
    )
    encoding.add_argument(
        "--preset",
        choices=X264_PRESETS,
        default=DEFAULT_PRESET,
        metavar="NAME",
        help=f"libx264's speed against file size (default {DEFAULT_PRESET}): about the same quality at one "
        f"--crf, slower presets give smaller files; {', '.join(X264_PRESETS)}",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run_animate(args: argparse.Namespace) -> int:
    from .. import device
    from ..pipelines.animate import AnimationOptions, build_pipeline

    device.tune_cpu_allocator()  # the networks' per-frame buffers re-used, not re-mapped (glibc)

    transfer = parse_transfer(args.transfer)
    model, config = model_request(args)
    pipeline = build_pipeline(
        args.checkpoint, model, config, args.align_corners, args.device, args.fp16, args.precision
    )
    options = AnimationOptions(
        relative=args.relative,
        adapt_scale=args.adapt_scale,
        best_frame=args.best_frame,
        find_best_frame=args.find_best_frame,
        batch_size=args.batch_size,
        pad=args.pad,
        visualize=args.visualize,
        crop=args.crop,
        paste_back=args.paste_back,
        increase=args.increase,
        face_index=args.face_index,
        faces=args.faces,
        smooth=args.smooth,
        max_missing=args.max_missing,
        overwrite=args.overwrite,
        transfer=transfer,
        **retarget_values(args),
        crf=args.crf,
        preset=args.preset,
    )
    with animator_threads(pipeline):
        result = pipeline.animate(
            args.source, args.driving, args.output, options, progress=not args.quiet, fps=args.fps
        )
    if not args.quiet:
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        print(
            f"wrote {result.output} ({result.frames} frames, {result.frames_per_second:.1f} frames/s, "
            f"{result.precision}, reference frame {result.reference_frame})",
            file=sys.stderr,
        )
    if args.stats:
        stages = ", ".join(f"{k} {1000 * v / max(result.frames, 1):.1f}" for k, v in result.timings.items())
        jitter = ", ".join(f"{k} {v:.5f}" for k, v in result.jitter.items())
        print(
            f"stats: {result.frames} frames in {result.seconds:.2f} s ({result.frames_per_second:.1f} frames/s); "
            f"precision {result.precision}, batch {result.batch_size}; ms per frame: {stages}; "
            f"jitter (mean keypoint acceleration): {jitter}; frames without a face: {result.missing_faces}"
        )
    return 0


# Options that other commands running the animation pipeline share (``reanimate live``).


def add_model_choice(p: argparse.ArgumentParser) -> None:
    """``--model`` and the checkpoint's options (:func:`~.common.add_model_args`)."""
    p.add_argument(
        "--model",
        default="auto",
        metavar="FAMILY",
        help="auto (default): the family the checkpoint names, else the zero-shot face-landmark "
        "animator (landmarks), which needs no weights; or a family name: landmarks, fomm",
    )
    add_model_args(p, checkpoint_required=False)


def add_retarget_args(p: argparse.ArgumentParser) -> None:
    """The retargeting group: ``--head``, ``--expression``, ``--eyes``, ``--lips``,
    ``--lips-only``, ``--blinks`` (:func:`retarget_values`)."""
    retarget = p.add_argument_group(
        "retargeting",
        "how much of the driver's motion the source takes: 0 keeps the source's, 1 follows the "
        "driver (default), between scales it, up to 2 exaggerates (landmarks: all; mmfa: --head, "
        "--expression; fomm: none)",
    )
    retarget.add_argument("--head", type=float, default=1.0, metavar="F", help="head rotation, scale and translation")
    retarget.add_argument(
        "--expression", type=float, default=1.0, metavar="F", help="the face's non-rigid motion (brows, cheeks...)"
    )
    retarget.add_argument("--eyes", type=float, metavar="F", help="lids and gaze (default: as --expression)")
    retarget.add_argument("--lips", type=float, metavar="F", help="mouth and jaw (default: as --expression)")
    retarget.add_argument(
        "--lips-only",
        action="store_true",
        help="only the mouth follows (dubbing): --head 0 --expression 0 --eyes 0 --lips 1",
    )
    retarget.add_argument(
        "--blinks",
        choices=("keep", "suppress"),
        default="keep",
        help="keep the driver's blinks (default) or suppress them: the lids keep the source's opening",
    )


def retarget_values(args: argparse.Namespace) -> dict:
    """The :class:`~reanimate.pipelines.animate.AnimationOptions` fields of :func:`add_retarget_args`'s options."""
    return {name: getattr(args, name) for name in ("head", "expression", "eyes", "lips", "lips_only", "blinks")}


def add_face_index_arg(group) -> None:
    group.add_argument(
        "--face-index", type=int, metavar="I", help="animate the I-th largest face of the source (default: the largest)"
    )


def add_face_kind_arg(group) -> None:
    group.add_argument(
        "--face-kind",
        choices=("auto", "human", "other"),
        default="auto",
        help="auto (default): MediaPipe's face detector says whether the source face is human; other (an "
        "animal): no teeth from the driver, no lash lines on blinks (the landmark animator)",
    )


def add_smooth_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--smooth", choices=("one-euro", "kalman"), help="filter driving keypoints over time against jitter")


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def add_backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="torch (default) or onnxruntime: run an ONNX export of a fomm-family model (reanimate export "
        "--format onnx; --checkpoint is then its folder) on the CPU",
    )


def add_precision_args(p: argparse.ArgumentParser) -> None:
    """``--precision`` and its older spelling ``--fp16``."""
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="the learned networks' arithmetic (default fp32): bf16 = bfloat16 autocast, about 3x faster on CPUs "
        "with bfloat16 units (AVX512_BF16, AMX; fp32 with a note elsewhere) and on CUDA, frames within a few "
        "levels of fp32's (README); fp16 = float16 autocast, CUDA only",
    )
    p.add_argument("--fp16", action="store_true", help="deprecated spelling of --precision fp16")


def model_request(args: argparse.Namespace) -> tuple[str, str | None]:
    """The ``model`` and ``config`` that ``build_pipeline`` is given for the options of
    :func:`add_model_choice`, :func:`add_face_kind_arg`, :func:`add_backend_arg` and
    :func:`add_precision_args`."""
    model, config = args.model, args.config
    if args.face_kind != "auto":  # a setting of the landmark animator, handed to it as its config
        from ..animators.landmarks.animator import face_kind_request

        model, config = face_kind_request(args.face_kind, args.model, args.checkpoint, args.config)
    from ..animators.onnx_fomm import backend_request

    return backend_request(args.backend, model, args.checkpoint, config, args.fp16 or args.precision == "fp16")
