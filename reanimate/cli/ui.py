"""``reanimate ui``."""

from __future__ import annotations

import argparse

from ..ui.files import DEFAULT_CHECKPOINT_MB, DEFAULT_UPLOAD_MB, DEFAULT_VIDEO_SECONDS


def add_ui_command(sub) -> None:
    p = sub.add_parser(
        "ui",
        help="serve the web app (animate, edit, live webcam) in the browser",
        description="Serve the web app on this computer (127.0.0.1) until Ctrl-C. Uploads and results stay in a "
        "private temporary folder, removed when a browser session ends and when the server stops. Needs the ui "
        "extra: pip install 'reanimate[ui]'.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, help="port (default: the first free one from 7860)")
    p.add_argument("--share", action="store_true", help="also serve through a public Gradio link (off by default)")
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="PATH",
        help="a model file to offer besides the default animator (repeatable)",
    )
    p.add_argument(
        "--vae",
        metavar="PATH",
        help="an expression VAE (a `reanimate train-vae` run folder or its model.safetensors, as interpolate "
        "--vae takes it): the Edit tab then walks between two expressions with the --checkpoint models that have "
        "expression control (MMFA)",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_UPLOAD_MB,
        metavar="MB",
        help=f"largest upload of media accepted (default {DEFAULT_UPLOAD_MB:g})",
    )
    p.add_argument(
        "--max-checkpoint-mb",
        type=float,
        default=DEFAULT_CHECKPOINT_MB,
        metavar="MB",
        help="largest model checkpoint a user may upload on the Animate tab (default "
        f"{DEFAULT_CHECKPOINT_MB:g}); loaded once per browser session, removed with it",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=DEFAULT_VIDEO_SECONDS,
        metavar="S",
        help=f"longest driving video accepted (default {DEFAULT_VIDEO_SECONDS:g})",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def run_ui(args: argparse.Namespace) -> int:
    import importlib.util

    from ..errors import ReanimateError
    from ..ui.files import Limits
    from ..ui.server import serve

    # (not imported here: Gradio reads where to keep its files when imported, which serve sets)
    if importlib.util.find_spec("gradio") is None:
        raise ReanimateError("reanimate ui needs Gradio: pip install 'reanimate[ui]'")
    limits = Limits(args.max_upload_mb, args.max_seconds, args.max_checkpoint_mb)
    serve(args.host, args.port, args.share, args.checkpoint, limits, args.device, args.vae)
    return 0
