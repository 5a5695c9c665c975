"""Argument types and option groups shared by several commands."""

from __future__ import annotations

import argparse
import contextlib
import os


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_model_args(p: argparse.ArgumentParser, checkpoint_required: bool = True) -> None:
    p.add_argument(
        "--checkpoint",
        required=checkpoint_required,
        help="model weights: an official FOMM .pth.tar (--config, or found from its tensors) "
        "or a reanimate .safetensors (carries its config)",
    )
    p.add_argument("--config", help="model config YAML, or a built-in name such as vox-256")
    p.add_argument(
        "--align-corners",
        type=parse_bool,
        metavar="true|false",
        default=None,
        help="grid_sample convention; default from the config (true: as the official "
        "checkpoints were trained, with PyTorch 1.0)",
    )


@contextlib.contextmanager
def torch_threads(count: int):
    """Torch's intra-op threads set to ``count`` for a while (a caller's own setting is
    given back when main() runs in its process)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def animator_threads(pipeline):
    """Torch's threads set to what the pipeline's animator runs fastest with on the CPU
    (``Requirements.cpu_threads``) for a while, unless the user set ``OMP_NUM_THREADS``
    or the animator has no preference."""
    wanted = pipeline.requirements.cpu_threads
    if wanted is None or "OMP_NUM_THREADS" in os.environ or pipeline.requirements.device != "cpu":
        return contextlib.nullcontext()
    return torch_threads(wanted)
