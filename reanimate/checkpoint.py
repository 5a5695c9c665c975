"""Checkpoints: the reference FOMM ``.pth.tar`` layout and the project's own format.

Reference layout (``torch.save`` of a dict): top-level ``kp_detector``, ``generator``,
optional ``discriminator`` state dicts, optimizer states
(``optimizer_generator`` …) and ``epoch``. Loaded with ``torch.load(weights_only=True)``.

Own format: one ``.safetensors`` file with the weights of every network under its
prefix (``kp_detector.``, ``generator.``, ``discriminator.``) and the model config
(YAML, official keys) in the header metadata, so ``--checkpoint`` alone rebuilds the
model.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .errors import CheckpointError, InputError
from .models import FirstOrderModel, ModelConfig, build_model

FORMAT = "reanimate.fomm"
FORMAT_VERSION = "1"
NETWORKS = ("kp_detector", "generator", "discriminator")


def is_own_format(path: str | os.PathLike) -> bool:
    return Path(path).suffix == ".safetensors"


def read_official(path: str | os.PathLike) -> dict:
    """Read a reference-layout checkpoint safely (no pickled code is executed)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/unsafe files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise CheckpointError(path, f"not a readable PyTorch checkpoint ({first[:200]})") from None
    if not isinstance(data, dict) or "kp_detector" not in data or "generator" not in data:
        keys = ", ".join(map(str, list(data)[:6])) if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(path, f"not a FOMM checkpoint: expected 'kp_detector' and 'generator' entries, found {keys}")
    return data


def _normalise_state(state: dict[str, torch.Tensor], module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Strip a DataParallel ``module.`` prefix and add BatchNorm counters older files lack."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    state = dict(state)
    expected = module.state_dict()
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    return state


def check_state_dict(path, prefix: str, state: dict, module: torch.nn.Module) -> None:
    """Raise :class:`CheckpointError` naming the first key whose presence or shape differs."""
    expected = module.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise CheckpointError(path, f"key '{prefix}.{key}' is missing (the config expects shape {tuple(value.shape)})")
        got = tuple(state[key].shape)
        if got != tuple(value.shape):
            raise CheckpointError(
                path,
                f"key '{prefix}.{key}' has shape {got} in the checkpoint but {tuple(value.shape)} in the config"
                " (is --config the one this checkpoint was trained with?)",
            )
    for key in state:
        if key not in expected:
            raise CheckpointError(path, f"unexpected key '{prefix}.{key}' (not in the model built from the config)")


def _load_networks(path, model: FirstOrderModel, states: dict[str, dict]) -> None:
    for name, module in model.parts().items():
        if name not in states:
            if name == "discriminator":
                continue
            raise CheckpointError(path, f"no '{name}' weights in the checkpoint")
        state = _normalise_state(states[name], module)
        check_state_dict(path, name, state, module)
        module.load_state_dict(state)


def load_official(
    path: str | os.PathLike, config: ModelConfig, with_discriminator: bool = False
) -> tuple[FirstOrderModel, dict]:
    """Build the model of ``config`` and load a reference ``.pth.tar`` into it.

    Returns the model (eval mode) and the raw checkpoint dict (optimizer states, epoch).
    """
    data = read_official(path)
    model = build_model(config, with_discriminator=with_discriminator and "discriminator" in data)
    _load_networks(path, model, data)
    return model.eval(), data


def save(path: str | os.PathLike, model: FirstOrderModel, extra: dict[str, str] | None = None) -> Path:
    """Write the own format atomically (temporary file, then rename)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(path, f"output folder {path.parent} does not exist")
    tensors = {}
    for name, module in model.parts().items():
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().cpu().contiguous()
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config.to_yaml()}
    metadata.update(extra or {})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_own_metadata(path: str | os.PathLike) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(path, f"not a readable safetensors file ({str(exc)[:200]})") from None


def read_own_config(path: str | os.PathLike) -> ModelConfig:
    """The model config embedded in an own-format checkpoint (weights are not read)."""
    meta = read_own_metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(path, f"not a reanimate checkpoint (format {meta.get('format')!r})")
    try:
        return ModelConfig.from_yaml_text(meta["config"], name=Path(path).stem)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(path, f"embedded config is unusable ({exc})") from None


def load_own(
    path: str | os.PathLike, config: ModelConfig | None = None, with_discriminator: bool = False
) -> FirstOrderModel:
    """Load the own format; the embedded config is used unless ``config`` is given."""
    embedded = read_own_config(path)
    config = config or embedded
    states = _read_own_states(path)
    model = build_model(config, with_discriminator=with_discriminator and "discriminator" in states)
    _load_networks(path, model, states)
    return model.eval()


def load_own_into(path: str | os.PathLike, model: FirstOrderModel) -> None:
    """Load an own-format file into an existing model (every network it has, the
    discriminator included when the model has one)."""
    read_own_config(path)
    states = _read_own_states(path)
    if model.discriminator is not None and "discriminator" not in states:
        raise CheckpointError(path, "no 'discriminator' weights in the checkpoint")
    _load_networks(path, model, states)


def _read_own_states(path) -> dict[str, dict]:
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(path, f"not a readable safetensors file ({str(exc)[:200]})") from None
    states: dict[str, dict] = {}
    for key, value in tensors.items():
        net, _, rest = key.partition(".")
        states.setdefault(net, {})[rest] = value
    return states


def load(
    path: str | os.PathLike,
    config: ModelConfig | None = None,
    with_discriminator: bool = False,
    align_corners: bool | None = None,
) -> FirstOrderModel:
    """Load either format. The reference format needs ``config``; ``align_corners``
    overrides the config's value (the embedded one for the own format)."""
    if align_corners is not None:
        if config is None and is_own_format(path):
            config = read_own_config(path)
        if config is not None:
            config = config.with_align_corners(align_corners)
    if is_own_format(path):
        return load_own(path, config, with_discriminator)
    if config is None:
        raise CheckpointError(path, "a reference .pth.tar checkpoint needs --config (e.g. --config vox-256)")
    model, _ = load_official(path, config, with_discriminator)
    return model


def convert(source: str | os.PathLike, config: ModelConfig, output: str | os.PathLike) -> Path:
    """Reference ``.pth.tar`` -> own ``.safetensors`` (with the discriminator when present)."""
    model, data = load_official(source, config, with_discriminator=True)
    extra = {"converted_from": Path(source).name}
    if isinstance(data.get("epoch"), int):
        extra["epoch"] = str(data["epoch"])
    return save(output, model, extra)
