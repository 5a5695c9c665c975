"""Reading and checking third-party weight files (torchvision, lpips, pytorch-fid
layouts) without executing pickled code: one-line :class:`CheckpointError` s that name
the file and the first missing key, wrong shape or unexpected entry."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError


def read_state_dict_file(path: str | os.PathLike, what: str, expected_file: str) -> dict[str, torch.Tensor]:
    """The ``{key: value}`` dict stored in ``path``, read without executing pickled code.

    Args:
        path: the file the user gave.
        what: what the file should hold, for messages (``"torchvision AlexNet state dict"``).
        expected_file: the usual file name, suggested in messages.

    A leading ``module.`` (``nn.DataParallel``) is stripped from the keys when every key
    has it. Raises :class:`CheckpointError` when the file is missing, unreadable with
    ``weights_only=True`` or not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, f"no such weights file; give {expected_file} ({what})")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and weights_only errors come in many types
        # torch's own message suggests weights_only=False, which we never do for
        # third-party files, so only its type is kept.
        raise CheckpointError(
            path,
            f"not a torch weights file readable with weights_only=True ({type(exc).__name__}); give {expected_file}",
        ) from None
    if not isinstance(raw, Mapping):
        raise CheckpointError(path, f"expected a {what} ({expected_file}), got a {type(raw).__name__}")
    if raw and all(isinstance(k, str) and k.startswith("module.") for k in raw):
        raw = {k[len("module.") :]: v for k, v in raw.items()}
    return dict(raw)


def select_state(
    path: str | os.PathLike,
    state: Mapping[str, object],
    expected: Mapping[str, tuple[int, ...]],
    what: str,
    *,
    optional: Mapping[str, tuple[int, ...]] | None = None,
    ignore_prefixes: Iterable[str] = (),
) -> dict[str, torch.Tensor]:
    """Check ``state`` against a layout and return the entries of that layout.

    Args:
        path: the file ``state`` came from, named in errors.
        state: what :func:`read_state_dict_file` returned.
        expected: ``{key: shape}`` of the required floating-point entries, in the order
            they are checked (the first problem found is reported).
        what: the layout's name for messages (``"torchvision AlexNet state dict"``).
        optional: ``{key: shape}`` of entries that may be absent and of any dtype
            (BatchNorm's ``num_batches_tracked`` counters).
        ignore_prefixes: keys starting with one of these are allowed and dropped (a
            classifier the metric does not use); any other key outside ``expected`` and
            ``optional`` is an error.

    Returns:
        ``{key: tensor}`` for the keys of ``expected`` and those of ``optional`` present.
    """
    optional = dict(optional or {})
    prefixes = tuple(ignore_prefixes)
    out: dict[str, torch.Tensor] = {}
    for key, shape in expected.items():
        if key not in state:
            raise CheckpointError(path, f"not a {what}: key {key!r} is missing")
        out[key] = _checked_tensor(path, state[key], key, shape, what, floating=True)
    for key, shape in optional.items():
        if key in state:
            out[key] = _checked_tensor(path, state[key], key, shape, what, floating=False)
    for key in state:
        if key in out or (isinstance(key, str) and key.startswith(prefixes)):
            continue
        raise CheckpointError(path, f"not a {what}: unexpected key {key!r}")
    return out


def _checked_tensor(path, value: object, key: str, shape: tuple[int, ...], what: str, floating: bool) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(path, f"not a {what}: {key!r} is a {type(value).__name__}, not a tensor")
    if tuple(value.shape) != tuple(shape):
        raise CheckpointError(path, f"not a {what}: {key!r} has shape {tuple(value.shape)}, expected {tuple(shape)}")
    if floating and not value.is_floating_point():
        raise CheckpointError(path, f"not a {what}: {key!r} has dtype {value.dtype}, expected floating point")
    return value


@torch.no_grad()
def load_selected_state(module: nn.Module, selected: Mapping[str, torch.Tensor]) -> None:
    """Copy ``selected`` into ``module``; entries it lacks (optional counters) keep their values."""
    merged = module.state_dict()
    merged.update(selected)
    module.load_state_dict(merged, strict=True)
