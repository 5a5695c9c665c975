"""Checkpoints of a training run, written atomically, for exact resumption.

Layout inside ``RUN_DIR/checkpoints/``::

    step-00001200/            one checkpoint
        model.safetensors     the networks, in the project's own format: ``reanimate
                              animate --checkpoint .../model.safetensors`` uses it as is
        model_ema.safetensors with ``train_params.ema_decay``: the averaged networks,
                              the same format
        state.safetensors     tensors of the training state: optimizer moments, RNG states
        state.json            the rest: epoch, step, batches done in the epoch, optimizer
                              param groups, scheduler and grad-scaler state, numpy and
                              Python RNG states
    latest.json               {"checkpoint": "step-00001200"}

A checkpoint folder is written under a temporary name and renamed when complete, and
``latest.json`` is replaced (write-then-rename) only after that, so an interruption at
any moment leaves the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .. import checkpoint as model_checkpoint
from ..errors import CheckpointError
from ..io.files import atomic_path, write_text_atomic
from ..models import FirstOrderModel

LATEST = "latest.json"
EMA_FILE = "model_ema.safetensors"
STATE_FORMAT = "reanimate.train_state"
STATE_VERSION = 1


@dataclass
class TrainingState:
    """Where a run stands. ``batch_in_epoch`` batches of ``epoch`` are done (0 at an
    epoch boundary); ``step`` counts all optimisation steps so far."""

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def _write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=1))


def _split_optimizer(name: str, state: dict, tensors: dict[str, torch.Tensor]) -> dict:
    """Optimizer state dict -> JSON-able dict; its tensors go to ``tensors``."""
    per_param = {}
    for index, values in state["state"].items():
        entry = {}
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{name}.{index}.{key}"] = value.detach().cpu().contiguous()
                entry[key] = {"tensor": f"optimizer.{name}.{index}.{key}"}
            else:
                entry[key] = value
        per_param[str(index)] = entry
    return {"state": per_param, "param_groups": state["param_groups"]}


def _join_optimizer(saved: dict, tensors: dict[str, torch.Tensor]) -> dict:
    state = {}
    for index, values in saved["state"].items():
        state[int(index)] = {
            key: tensors[value["tensor"]] if isinstance(value, dict) and "tensor" in value else value
            for key, value in values.items()
        }
    return {"state": state, "param_groups": saved["param_groups"]}


def _scheduler_state(scheduler) -> dict:
    state = dict(scheduler.state_dict())
    if "milestones" in state:  # a collections.Counter with int keys
        state["milestones"] = sorted([int(k), int(v)] for k, v in state["milestones"].items())
    return state


def _load_scheduler(scheduler, state: dict) -> None:
    state = dict(state)
    if "milestones" in state:
        from collections import Counter

        state["milestones"] = Counter({k: v for k, v in state["milestones"]})
    scheduler.load_state_dict(state)


def rng_state(tensors: dict[str, torch.Tensor]) -> dict:
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }


def restore_rng_state(saved: dict, tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, cached = saved["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = saved["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(
    run_dir: str | os.PathLike,
    model: FirstOrderModel,
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict[str, Any],
    scaler: torch.amp.GradScaler | None,
    state: TrainingState,
    ema: FirstOrderModel | None = None,
) -> Path:
    """Write one checkpoint atomically and point ``latest.json`` at it (``ema``: the
    averaged networks, to ``model_ema.safetensors``)."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state.step:08d}"
    final = root / name
    # An existing folder of the same step (written again, e.g. Ctrl-C right after a save)
    # is replaced whole.
    with atomic_path(final, directory=True) as tmp:
        stamp = {"epoch": str(state.epoch), "step": str(state.step)}
        model_checkpoint.save(tmp / "model.safetensors", model, stamp)
        if ema is not None:
            model_checkpoint.save(tmp / EMA_FILE, ema, {**stamp, "ema": "true"})
        tensors: dict[str, torch.Tensor] = {}
        doc = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "epoch": state.epoch,
            "step": state.step,
            "batch_in_epoch": state.batch_in_epoch,
            "extra": state.extra,
            "optimizers": {k: _split_optimizer(k, o.state_dict(), tensors) for k, o in optimizers.items()},
            "schedulers": {k: _scheduler_state(s) for k, s in schedulers.items()},
            "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
            "rng": rng_state(tensors),
        }
        with model_checkpoint.follow_umask(tmp / "state.safetensors") as state_file:
            save_file(tensors, str(state_file))
        _write_json(tmp / "state.json", doc)
    _write_json(root / LATEST, {"checkpoint": name})
    return final


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    root = checkpoint_dir(run_dir)
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text())["checkpoint"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(pointer, "unreadable; remove it to resume from the newest checkpoint folder") from None
    path = root / name
    if not (path / "state.json").is_file():
        raise CheckpointError(pointer, f"points at {name}, which is missing or incomplete")
    return path


def load_checkpoint(
    path: str | os.PathLike,
    model: FirstOrderModel,
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict[str, Any],
    scaler: torch.amp.GradScaler | None,
    restore_rng: bool = True,
) -> TrainingState:
    """Restore networks, optimizers, schedulers, scaler and RNG states in place."""
    path = Path(path)
    try:
        doc = json.loads((path / "state.json").read_text())
        tensors = load_file(str(path / "state.safetensors"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(path, f"cannot read the training state ({exc.__class__.__name__}: {exc})") from None
    if doc.get("format") != STATE_FORMAT:
        raise CheckpointError(path, f"not a reanimate training checkpoint (format {doc.get('format')!r})")
    model_checkpoint.load_own_into(path / "model.safetensors", model)
    for name, optimizer in optimizers.items():
        if name not in doc["optimizers"]:
            raise CheckpointError(path, f"no state for optimizer '{name}'")
        optimizer.load_state_dict(_join_optimizer(doc["optimizers"][name], tensors))
    for name, scheduler in schedulers.items():
        _load_scheduler(scheduler, doc["schedulers"][name])
    if scaler is not None and doc.get("scaler"):
        scaler.load_state_dict(doc["scaler"])
    if restore_rng:
        restore_rng_state(doc["rng"], tensors)
    return TrainingState(doc["epoch"], doc["step"], doc["batch_in_epoch"], doc.get("extra", {}))
