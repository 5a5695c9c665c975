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

import contextlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file

from .errors import CheckpointError, InputError
from .io.files import atomic_path
from .models import FirstOrderModel, ModelConfig, build_model

FORMAT = "reanimate.fomm"
FORMAT_VERSION = "1"
NETWORKS = ("kp_detector", "generator", "discriminator")
#: reads one tensor of a checkpoint: (network, key) -> tensor
TensorReader = Callable[[str, str], torch.Tensor]


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
        raise CheckpointError(
            path, f"not a FOMM checkpoint: expected 'kp_detector' and 'generator' entries, found {keys}"
        )
    return data


def _normalise_state(state: dict[str, torch.Tensor], module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Strip a DataParallel ``module.`` prefix and add BatchNorm counters older files lack."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
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
            raise CheckpointError(
                path, f"key '{prefix}.{key}' is missing (the config expects shape {tuple(value.shape)})"
            )
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


def _load_networks(path, model: FirstOrderModel, states: dict[str, dict], read: TensorReader | None = None) -> None:
    """Check ``states`` (network -> key -> tensor) against ``model``'s networks and copy
    them in. With ``read``, ``states`` may hold shapes only (meta tensors): each is read
    with ``read(network, key)`` as it is copied, so that at most one checkpoint tensor is
    held beside the model (not a second copy of all its weights)."""
    for name, module in model.parts().items():
        if name not in states:
            if name == "discriminator":
                continue
            raise CheckpointError(path, f"no '{name}' weights in the checkpoint")
        state = _normalise_state(states[name], module)
        check_state_dict(path, name, state, module)
        if read is None:
            module.load_state_dict(state)
            continue
        with torch.no_grad():
            for key, target in module.state_dict().items():  # shares the parameters' storage
                value = state[key]
                target.copy_(read(name, key) if value.is_meta else value)


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
    with atomic_path(path) as tmp, follow_umask(tmp):
        save_file(tensors, str(tmp), metadata=metadata)
    return path


@contextlib.contextmanager
def follow_umask(path: Path) -> Iterator[Path]:
    """Around ``safetensors`` ``save_file(..., path)``: afterwards ``path`` has the mode
    of any new output (0666 less the umask), not the 0600 of the private temporary that
    safetensors writes through and renames (since 0.6). ``path`` must not exist."""
    path.touch(exist_ok=False)  # created as open() creates files: the mode to keep
    mode = stat.S_IMODE(path.stat().st_mode)
    yield path
    os.chmod(path, mode)


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
    with _own_states(path) as (states, read):
        model = build_model(config, with_discriminator=with_discriminator and "discriminator" in states)
        _load_networks(path, model, states, read)
    return model.eval()


def load_own_into(path: str | os.PathLike, model: FirstOrderModel) -> None:
    """Load an own-format file into an existing model (every network it has, the
    discriminator included when the model has one). Any family's model: only its
    ``parts()`` are read, not its config."""
    meta = read_own_metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(path, f"not a reanimate checkpoint (format {meta.get('format')!r})")
    with _own_states(path) as (states, read):
        if getattr(model, "discriminator", None) is not None and "discriminator" not in states:
            raise CheckpointError(path, "no 'discriminator' weights in the checkpoint")
        _load_networks(path, model, states, read)


@contextlib.contextmanager
def _own_states(path) -> Iterator[tuple[dict[str, dict], TensorReader]]:
    """An own-format file's networks as shapes (meta tensors: network -> key -> tensor)
    and the function that reads one tensor, while the file is open.

    Tensors are read from the file on demand with plain reads, not through a memory map
    (safetensors' own loaders map the whole file, and the mapped pages count in the
    process's memory while it is open), into one buffer of the largest tensor's size:
    loading holds the model and that buffer. A tensor ``read`` returns lives in the
    buffer, so it is valid until the next read (copy it before)."""

    def unreadable(exc: Exception | str) -> CheckpointError:
        return CheckpointError(path, f"not a readable safetensors file ({str(exc)[:200]})")

    try:
        with safe_open(str(path), framework="pt") as handle:  # validates the header
            entries = {key: handle.get_slice(key) for key in handle.keys()}
            layout = {key: (entry.get_dtype(), entry.get_shape()) for key, entry in entries.items()}
        with open(path, "rb") as file:
            header = int.from_bytes(file.read(8), "little")
            described = json.loads(file.read(header))
        offsets = {key: described[key]["data_offsets"] for key in layout}
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise unreadable(exc) from None
    states: dict[str, dict] = {}
    for key, (_, shape) in layout.items():
        net, _, rest = key.partition(".")
        states.setdefault(net, {})[rest] = torch.empty(shape, device="meta")

    # One buffer for every read (freeing and allocating tensors of many sizes instead
    # fragments the heap: about 60 MiB more for vox-256).
    buffer = torch.empty(max((end - begin for begin, end in offsets.values()), default=0), dtype=torch.uint8)
    with open(path, "rb") as file:

        def read(net: str, rest: str) -> torch.Tensor:
            key = f"{net}.{rest}"
            dtype, shape = layout[key]
            if dtype not in _SAFETENSORS_DTYPES:
                raise unreadable(f"tensor {key} has the unsupported type {dtype}")
            begin, end = offsets[key]
            file.seek(8 + header + begin)
            if file.readinto(buffer[: end - begin].numpy()) != end - begin:
                raise unreadable(f"tensor {key} is cut short")
            return buffer[: end - begin].view(_SAFETENSORS_DTYPES[dtype]).view(shape)

        yield states, read


#: safetensors' dtype names -> torch's (the types a checkpoint of ours can hold)
_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def load(
    path: str | os.PathLike,
    config: ModelConfig | None = None,
    with_discriminator: bool = False,
    align_corners: bool | None = None,
    notes: list[str] | None = None,
) -> FirstOrderModel:
    """Load either format. A reference ``.pth.tar`` without ``config`` loads when its
    tensors identify one shipped config (:func:`identify_config`; a note saying which is
    appended to ``notes``). ``align_corners`` overrides the config's value (the embedded
    one for the own format)."""
    if is_own_format(path):
        if align_corners is not None:
            config = (config or read_own_config(path)).with_align_corners(align_corners)
        return load_own(path, config, with_discriminator)
    data = read_official(path)
    if config is None:
        config = identify_config(path, data)
        if notes is not None:
            notes.append(
                f"{Path(path).name}: its tensors match the shipped config {config.name} "
                "(give --config to choose another)"
            )
    if align_corners is not None:
        config = config.with_align_corners(align_corners)
    model = build_model(config, with_discriminator=with_discriminator and "discriminator" in data)
    _load_networks(path, model, data)
    return model.eval()


def _matches(state: dict, module: torch.nn.Module) -> bool:
    expected = module.state_dict()
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    keys = {k for k in expected if not k.endswith("num_batches_tracked")}
    given = {k for k in state if not k.endswith("num_batches_tracked")}
    return keys == given and all(tuple(state[k].shape) == tuple(expected[k].shape) for k in keys)


def identify_config(path: str | os.PathLike, data: dict | None = None) -> ModelConfig:
    """The shipped config whose networks have exactly the tensors (names and shapes) of a
    reference checkpoint. Configs that differ only in settings the weights do not show
    (training schedule, discriminator) and build the same animation networks count as one.
    Raises :class:`CheckpointError` naming ``--config`` when none or several differ."""
    from .models.config import FAMILY, builtin_configs, config_family, load_config

    data = read_official(path) if data is None else data
    found: dict[str, ModelConfig] = {}
    for name, file in builtin_configs().items():
        if "/" not in name or config_family(file) != FAMILY:  # official files are FOMM's
            continue
        config = load_config(file)
        with torch.device("meta"):
            model = build_model(config, with_discriminator="discriminator" in data)
        parts = model.parts()
        if all(_matches(data[part], module) for part, module in parts.items() if part in data) and all(
            part in data for part in ("kp_detector", "generator")
        ):
            found[name] = config
    if not found:
        raise CheckpointError(
            path, "its tensors match no shipped config: give the one it was trained with (--config FILE.yaml)"
        )
    distinct = {_animation_params(c) for c in found.values()}
    if len(distinct) > 1:
        raise CheckpointError(
            path, f"its tensors match several shipped configs ({', '.join(found)}): choose one with --config"
        )
    return next(iter(found.values()))


def _animation_params(config: ModelConfig) -> str:
    """The settings that change what the animation networks compute (not training)."""
    params = {k: v for k, v in config.raw["model_params"].items() if k != "discriminator_params"}
    return json.dumps(params, sort_keys=True, default=str)


def checkpoint_family(path: str | os.PathLike) -> str | None:
    """The model family an own-format checkpoint's embedded config names (None for other
    files: official checkpoints belong to the default family). A missing file is an error."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "no such checkpoint file")
    if not is_own_format(path):
        return None
    meta = read_own_metadata(path)
    try:
        doc = yaml.safe_load(meta.get("config", "")) or {}
        family = (doc.get("model_params") or {}).get("family")
    except (yaml.YAMLError, AttributeError):
        return None
    return family if isinstance(family, str) else None


def convert(source: str | os.PathLike, config: ModelConfig, output: str | os.PathLike) -> Path:
    """Reference ``.pth.tar`` -> own ``.safetensors`` (with the discriminator when present)."""
    model, data = load_official(source, config, with_discriminator=True)
    extra = {"converted_from": Path(source).name}
    if isinstance(data.get("epoch"), int):
        extra["epoch"] = str(data["epoch"])
    return save(output, model, extra)
