"""The settings and the result of a training run (``reanimate train``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import TrainingState

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"


@dataclass
class TrainOptions:
    """Settings of a run besides the YAML config. Those in ``RUN_SETTINGS`` are saved in
    ``RUN_DIR/run.json`` and reused by ``--resume`` (changing them would change the run)."""

    seed: int = 0
    data_root: str | None = None
    batch_size: int | None = None  # overrides train_params.batch_size (global, all ranks)
    num_epochs: int | None = None  # overrides train_params.num_epochs
    num_repeats: int | None = None  # overrides train_params.num_repeats
    amp: str | None = None  # None, "bf16" or "fp16" (fp16 needs CUDA)
    channels_last: bool = False
    vgg_weights: str | None = None
    vgg_face_weights: str | None = None  # vgg_face_dag.pth for MMFA's VGG-Face term (loss_weights.vgg_face)
    init: str | None = None  # fine-tune from an official .pth.tar or own .safetensors
    backbone_weights: str | None = None  # ImageNet HRNet file for the motion transformer's backbone
    # Not saved (may differ between a run and its resumption):
    device: str = "auto"
    num_workers: int | None = None
    max_steps: int | None = None  # stop (with a checkpoint) after this global step
    max_minutes: float | None = None  # stop (with a checkpoint) after this wall time
    progress: bool = True
    tensorboard: bool = True


RUN_SETTINGS = (
    "seed",
    "data_root",
    "batch_size",
    "num_epochs",
    "num_repeats",
    "amp",
    "channels_last",
    "vgg_weights",
    "vgg_face_weights",
    "init",
    "backbone_weights",
)


@dataclass
class TrainResult:
    run_dir: Path
    state: TrainingState
    finished: bool  # all epochs done (False: stopped by max_steps, max_minutes or Ctrl-C)
    interrupted: bool
    checkpoint: Path | None
    losses: list[dict[str, float]] = field(default_factory=list)  # per step, this rank
    seconds: float = 0.0
    vgg_source: str = ""
