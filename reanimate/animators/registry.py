"""Model families by name: how to build each one's :class:`~reanimate.animators.base.Animator`
from a checkpoint and/or a config, and how to describe its networks.

A family is one :class:`Family` entry. ``--model auto`` picks the family a checkpoint
or config names (``model_params.family`` in the YAML, carried inside own-format
checkpoints; official ``.pth.tar`` files are FOMM's), and the zero-shot landmark
animator when neither is given.

>>> register_family(Family("identity", "the source, unmoved", build=lambda request: IdentityAnimator()))
>>> animator = build_animator(model="identity")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import ReanimateError

#: the family of a config or checkpoint that names none (FOMM's official files)
DEFAULT_FAMILY = "fomm"
#: the family ``--model auto`` uses without a checkpoint or config
ZERO_SHOT_FAMILY = "landmarks"


@dataclass(frozen=True)
class BuildRequest:
    """What the user asked for: ``checkpoint`` and ``config`` are paths or built-in
    names as given (None when absent); the family validates and loads them."""

    checkpoint: str | os.PathLike | None = None
    config: object = None  # a path, a built-in name, or an already loaded config object
    align_corners: bool | None = None
    device: str = "auto"
    fp16: bool = False


@dataclass(frozen=True)
class Family:
    """One model family.

    Attributes:
        name: what ``--model`` and ``model_params.family`` call it.
        description: one line for ``--help`` and errors.
        build: ``BuildRequest -> Animator``; raises :class:`ReanimateError` subclasses
            (one line) for bad input.
        uses_checkpoint: whether the family loads trained weights (``--checkpoint``).
        model_info: ``config name or path -> (title, rows of (network, parameters, MACs))``,
            for ``reanimate model-info``; None if the family has no networks.
    """

    name: str
    description: str
    build: Callable[[BuildRequest], object]
    uses_checkpoint: bool = True
    model_info: Callable[[str], tuple[str, list[tuple[str, int, int]]]] | None = None


_FAMILIES: dict[str, Family] = {}
_BUILTINS_LOADED = False


def register_family(family: Family, replace: bool = False) -> Family:
    """Add a family; a name already taken is an error unless ``replace``."""
    if family.name in ("auto",):
        raise ValueError(f"{family.name!r} is reserved")
    if family.name in _FAMILIES and not replace:
        raise ValueError(f"model family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    _FAMILIES.pop(name, None)


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        # Importing a family's module registers it.
        from . import fomm, mmfa  # noqa: F401
        from .landmarks import animator  # noqa: F401


def families() -> dict[str, Family]:
    """Registered families by name (the built-in ones first)."""
    _load_builtins()
    return dict(_FAMILIES)


def get_family(name: str) -> Family:
    known = families()
    if name not in known:
        raise ReanimateError(f"--model {name}: unknown model family (known: auto, {', '.join(known)})")
    return known[name]


def family_of(checkpoint: str | os.PathLike | None, config: object = None) -> str:
    """The family a checkpoint or config names: an own-format checkpoint's embedded
    config, else the config's ``model_params.family``; official ``.pth.tar`` files
    and configs that name none are :data:`DEFAULT_FAMILY`'s."""
    from ..checkpoint import checkpoint_family
    from ..models.config import config_family

    if checkpoint is not None:
        named = checkpoint_family(checkpoint)
        if named is not None:
            return named
    if config is not None:
        return config_family(config)
    return DEFAULT_FAMILY


def build_animator(
    checkpoint: str | os.PathLike | None = None,
    model: str = "auto",
    config: object = None,
    align_corners: bool | None = None,
    device: str = "auto",
    fp16: bool = False,
):
    """The :class:`~reanimate.animators.base.Animator` ``reanimate animate`` runs.

    ``model``: ``"auto"`` (the family a checkpoint or config names, else the zero-shot
    landmark animator) or a family name."""
    if model == "auto":
        if checkpoint is None and config is None:
            model = ZERO_SHOT_FAMILY
        else:
            model = family_of(checkpoint, config)
    family = get_family(model)
    if checkpoint is not None and not family.uses_checkpoint:
        raise ReanimateError(f"--model {family.name} uses no checkpoint (drop --checkpoint)")
    if family.uses_checkpoint and checkpoint is None:
        if config is not None:
            _validate_config(config)
            raise ReanimateError(
                f"--config {config} describes a {family.name} model's networks; it needs the trained weights "
                "too (--checkpoint FILE). Without a checkpoint the zero-shot face animator runs: drop --config"
            )
        raise ReanimateError(f"--model {family.name} needs --checkpoint")
    return family.build(BuildRequest(checkpoint, config, align_corners, device, fp16))


def _validate_config(config: object) -> None:
    """Load a config given on its own, so that its errors are reported first."""
    if isinstance(config, (str, os.PathLike)):
        from ..models.config import load_config_document

        load_config_document(config)


def model_names() -> Iterable[str]:
    return ["auto", *families()]
