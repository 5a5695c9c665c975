"""``reanimate live``: a camera (or a video file played as one) drives a portrait in
real time, into a window, a virtual camera and/or a recording."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from .animate import (
    add_backend_arg,
    add_device_arg,
    add_face_index_arg,
    add_face_kind_arg,
    add_model_choice,
    add_precision_args,
    add_retarget_args,
    add_smooth_arg,
    model_request,
    retarget_values,
)
from .common import torch_threads

#: the output's longer side unless --size says otherwise
DEFAULT_LIVE_SIZE = 512


def add_live_command(sub) -> None:
    p = sub.add_parser(
        "live",
        help="animate a portrait in real time from a camera (or a video file played as one)",
        description="A camera drives the portrait in real time: into a window, a virtual camera "
        "(--virtual-camera) and/or a recording (--output). The newest camera frame is always the one "
        "animated (older ones are dropped), so latency stays bounded. The first frame with a face is the "
        "reference: look at the camera as the portrait does; r in the window takes the next frame as the "
        "new reference, q or Esc (or Ctrl-C) ends.",
    )
    p.add_argument("source", help="the portrait (an image with a face)")
    given = p.add_argument_group("input (default: camera 0)").add_mutually_exclusive_group()
    given.add_argument(
        "--camera", metavar="N|DEVICE", help="camera index (0 = the first) or device path such as /dev/video2"
    )
    given.add_argument(
        "--video", metavar="FILE", help="a video file played in real time at its own rate, as a stand-in camera"
    )
    p.add_argument("--loop", action="store_true", help="play --video again from the start when it ends")
    shown = p.add_argument_group("output")
    shown.add_argument("--no-window", action="store_true", help="no window (headless: --output or --virtual-camera)")
    shown.add_argument(
        "--virtual-camera",
        action="store_true",
        help="send the frames to a virtual camera that video-call apps can use (pyvirtualcam: "
        "pip install 'reanimate[live]'; v4l2loopback on Linux, OBS on Windows and macOS)",
    )
    shown.add_argument("-o", "--output", metavar="FILE", help="also record to a video file (.mp4...)")
    shown.add_argument(
        "--size",
        type=int,
        default=DEFAULT_LIVE_SIZE,
        metavar="N",
        help=f"longer side of the output in pixels (default {DEFAULT_LIVE_SIZE})",
    )
    stop = p.add_argument_group("stop (default: at the end of --video, the window closed, or Ctrl-C)")
    stop.add_argument("--frames", type=int, metavar="N", help="after N frames shown")
    stop.add_argument("--seconds", type=float, metavar="S", help="after S seconds")
    add_model_choice(p)
    add_face_kind_arg(p)
    add_backend_arg(p)
    add_device_arg(p)
    add_precision_args(p)
    add_retarget_args(p)
    add_smooth_arg(p)
    add_face_index_arg(p)
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch's CPU threads (default: half the cores, or OMP_NUM_THREADS when set; the camera "
        "and face detection need the rest)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no status line every second (the summary stays)")


def run_live(args: argparse.Namespace) -> int:
    from .. import device
    from ..errors import ReanimateError
    from ..io import read_image
    from ..io.camera import CaptureThread, open_input, parse_camera
    from ..io.display import Recording, VirtualCamera, Window, require_pyvirtualcam
    from ..pipelines import live
    from ..pipelines.animate import AnimationOptions, build_pipeline

    device.tune_cpu_allocator()
    for option, value in (("--frames", args.frames), ("--seconds", args.seconds), ("--threads", args.threads)):
        if value is not None and value <= 0:
            raise ReanimateError(f"{option} must be positive, got {value}")
    if args.loop and args.video is None:
        raise ReanimateError("--loop replays a --video file; a camera does not end")
    options = AnimationOptions(smooth=args.smooth, face_index=args.face_index, **retarget_values(args))
    live.check_live_options(options, args.size)
    if args.virtual_camera:
        require_pyvirtualcam()
    with contextlib.ExitStack() as outputs:
        if args.threads is not None or "OMP_NUM_THREADS" not in os.environ:
            outputs.enter_context(torch_threads(args.threads or live.default_threads()))
        # The outputs that can fail for want of a display or a module first, before the
        # model is built and the camera opened.
        window = None if args.no_window else outputs.enter_context(Window())
        model, config = model_request(args)
        pipeline = build_pipeline(
            args.checkpoint, model, config, args.align_corners, args.device, args.fp16, args.precision
        )
        portrait = read_image(args.source)
        camera = parse_camera(args.camera) if args.camera is not None else None
        source = open_input(0 if camera is None and args.video is None else camera, args.video, args.loop)
        with (
            contextlib.closing(source),
            live.LiveSession(
                pipeline, portrait, options, source_name=args.source, size=args.size, fps=source.fps
            ) as session,
        ):
            chosen = [] if window is None else [window]
            if window is not None:
                window.keys["r"] = session.reset
            height, width = session.output_shape[:2]
            if args.virtual_camera:
                camera_out = outputs.enter_context(VirtualCamera(width, height, source.fps))
                chosen.append(camera_out)
                print(f"virtual camera: {camera_out.device}", file=sys.stderr)
            recording = outputs.enter_context(Recording(args.output, source.fps)) if args.output else None
            if recording is not None:
                chosen.append(recording)
            for note in session.notes:
                print(f"note: {note}", file=sys.stderr)
            status = None if args.quiet else (lambda line: print(f"live: {line}", file=sys.stderr, flush=True))
            with CaptureThread(source) as capture:
                stats = live.run_live(
                    session, capture, chosen, max_frames=args.frames, max_seconds=args.seconds, on_status=status
                )
    print(f"live: {stats.summary()}", file=sys.stderr)
    if recording is not None:
        done = f"wrote {recording.path} ({recording.frames} frames)" if recording.frames else "nothing recorded"
        print(f"live: {done}", file=sys.stderr)
    return 0
