"""Argument types and option groups shared by several commands."""

from __future__ import annotations

import argparse


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
