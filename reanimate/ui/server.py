"""Start the web app: a private folder for the server's files, Gradio pointed at it,
the page served until Ctrl-C (or SIGTERM), then the folder removed."""

from __future__ import annotations

import logging
import os

from .files import Limits, Workspace
from .jobs import Models
from .live import LiveFrames, frame_route

log = logging.getLogger(__name__)

#: requests waiting in Gradio's queue beyond which new ones are refused
QUEUE_SIZE = 32


def serve(
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    checkpoints=(),
    limits: Limits | None = None,
    device: str = "auto",
    vae=None,
) -> None:
    """Serve the app on ``host:port`` (None: Gradio's first free port from 7860) until
    interrupted; ``share``: also through Gradio's public tunnel. ``checkpoints``: the
    model files offered besides the default animator; ``vae``: an expression VAE offered
    with those that have expression control."""
    limits = limits or Limits()
    models = Models(checkpoints, device, vae)  # (a file that does not load: its one line before anything starts)
    with Workspace.create(limits) as workspace:
        # Gradio keeps uploads and the files it serves in GRADIO_TEMP_DIR: ours, private.
        os.environ["GRADIO_TEMP_DIR"] = str(workspace.root)
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        from .app import build_app, theme

        frames = LiveFrames(workspace)
        demo = build_app(workspace, models, frames)
        demo.queue(max_size=QUEUE_SIZE, api_open=False, default_concurrency_limit=1)
        log.info("files of this server: %s", workspace.root)
        demo.launch(
            server_name=host,
            server_port=port,
            share=share,
            max_file_size=limits.largest_bytes,  # (each kind's own limit: the handlers')
            theme=theme(),
            ssr_mode=False,
            mcp_server=False,
            enable_monitoring=False,
            run_history=False,
            show_error=False,
            app_kwargs={"routes": [frame_route(frames)]},
        )
