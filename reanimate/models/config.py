"""Model configuration from the official FOMM YAML layout.

The YAML keeps the reference implementation's keys (``model_params.common_params``,
``kp_detector_params``, ``generator_params.dense_motion_params``,
``discriminator_params``, ``train_params``, ``dataset_params`` …) so that existing
configs load unchanged. Additions of this project:

``model_params.common_params.align_corners`` (default ``true``)
    The ``align_corners`` flag of every ``grid_sample`` call. The reference code calls
    ``grid_sample`` without it. Its released checkpoints were trained with PyTorch 1.0,
    whose ``grid_sample`` behaved like ``align_corners=True``; the same code on
    PyTorch >= 1.3 silently runs with ``False`` (outputs differ by up to ~0.02). ``True``
    is also the convention of the coordinate grids (-1 and 1 are the centres of the
    corner pixels), so the identity motion reproduces the image exactly. Set ``false``
    only to reproduce the reference code run on a modern PyTorch.

``model_params.motion_estimator`` (default ``keypoint_detector``)
    Which network estimates the sparse motion: ``keypoint_detector`` (FOMM) or
    ``transformer`` (MoTrans, :class:`~reanimate.models.motion_transformer.MotionTransformer`;
    its ``kp_detector_params`` are :class:`MotionTransformerConfig` fields, e.g.
    ``backbone``, ``depth``, ``position_encoding``).

``model_params.bg_predictor_params`` and ``model_params.use_bg_predictor`` (MRAA / MTIA keys)
    A background motion predictor (:class:`~reanimate.models.background.BackgroundMotionConfig`:
    ``block_expansion``, ``max_features``, ``num_blocks``, ``bg_type``,
    ``translation_type``), built as ``generator.bg_predictor`` when the params are given
    and ``use_bg_predictor`` is not false (MTIA sets it; MRAA always builds one). Absent
    by default (FOMM: the background does not move).

``model_params.generator_params.skips`` (default ``false``; MRAA / MTIA key)
    U-Net skip connections in the generator (see :mod:`reanimate.models.generator`).

``model_params.family`` (default ``fomm``)
    The model family (:mod:`reanimate.animators.registry`) that reads this config.

``model_params.face`` (default: see below)
    A face model: ``reanimate animate`` crops the source's face, animates it and pastes
    it back (the official vox models were trained on face crops). Set in the shipped
    ``vox*`` configs and carried inside own-format checkpoints, so the same weights
    behave the same with or without ``--config``. Official YAMLs predate the key: when it
    is absent, a config whose ``dataset_params.root_dir`` names VoxCeleb (``vox``) is
    taken as a face model, as the reference demo's face crops assume.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from .background import BackgroundMotionConfig
from .dense_motion import DenseMotionConfig
from .discriminator import DiscriminatorConfig
from .generator import GeneratorConfig
from .keypoint_detector import KeypointDetectorConfig
from .motion_transformer import MotionTransformerConfig

#: the family name (:mod:`reanimate.animators.registry`) whose configs these are
FAMILY = "fomm"

#: ``model_params.motion_estimator`` -> the config dataclass of ``kp_detector_params``.
ESTIMATOR_CONFIGS = {"keypoint_detector": KeypointDetectorConfig, "transformer": MotionTransformerConfig}

log = logging.getLogger(__name__)


def _config_dir() -> Path:
    """The copy installed with the package (``reanimate/configs``), else the
    ``configs/`` folder of a source checkout (editable installs)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "configs"
    return installed if installed.is_dir() else package.parent / "configs"


CONFIG_DIR = _config_dir()


def dataclass_from_dict(cls, params: dict[str, Any], where: str):
    """Dataclass from a dict; unknown keys are logged and ignored (forks add keys)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        log.warning("%s: ignoring unknown keys %s", where, ", ".join(unknown))
    return cls(**{k: v for k, v in params.items() if k in names})


@dataclass
class ModelConfig:
    """Typed view of ``model_params``; ``raw`` keeps the whole YAML document."""

    kp_detector: KeypointDetectorConfig | MotionTransformerConfig
    generator: GeneratorConfig
    discriminator: DiscriminatorConfig
    frame_shape: tuple[int, int, int] = (256, 256, 3)
    motion_estimator: str = "keypoint_detector"
    align_corners: bool = True
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    name: str = "model"
    face: bool = False
    family: str = "fomm"

    @classmethod
    def from_dict(cls, doc: dict[str, Any], name: str = "model") -> ModelConfig:
        if not isinstance(doc, dict) or not isinstance(doc.get("model_params"), dict):
            raise ValueError("no 'model_params' section")
        doc = copy.deepcopy(doc)
        model = doc["model_params"]
        family = model.get("family", FAMILY)
        if family != FAMILY:
            raise ValueError(f"model_params.family is {family!r}: not a config of the {FAMILY} family")
        face = model.get("face")
        if face is None:
            root = str((doc.get("dataset_params") or {}).get("root_dir", ""))
            face = "vox" in Path(root).name.lower()
        elif not isinstance(face, bool):
            raise ValueError(f"model_params.face must be true or false, got {face!r}")
        common = dict(model.get("common_params") or {})
        align_corners = bool(common.pop("align_corners", True))
        kp_params = {**common, **(model.get("kp_detector_params") or {})}
        gen_params = {**common, **(model.get("generator_params") or {})}
        dm_params = gen_params.pop("dense_motion_params", None)
        if "bg_predictor_params" in gen_params:
            raise ValueError("bg_predictor_params belongs in model_params, beside generator_params")
        dense = None
        if dm_params is not None:
            dense = dataclass_from_dict(
                DenseMotionConfig,
                {
                    "num_kp": common.get("num_kp", 10),
                    "num_channels": common.get("num_channels", 3),
                    "estimate_occlusion_map": gen_params.get("estimate_occlusion_map", False),
                    "align_corners": align_corners,
                    **dm_params,
                },
                "dense_motion_params",
            )
        generator = dataclass_from_dict(
            GeneratorConfig, {**gen_params, "align_corners": align_corners}, "generator_params"
        )
        generator.dense_motion_params = dense
        bg_params = model.get("bg_predictor_params")
        if model.get("use_bg_predictor") and bg_params is None:
            raise ValueError("use_bg_predictor is set but model_params has no bg_predictor_params")
        if bg_params is not None and model.get("use_bg_predictor", True):
            generator.bg_predictor_params = dataclass_from_dict(
                BackgroundMotionConfig,
                {"num_channels": common.get("num_channels", 3), **bg_params},
                "bg_predictor_params",
            )
        disc_params = {
            "num_channels": common.get("num_channels", 3),
            "num_kp": common.get("num_kp", 10),
            **(model.get("discriminator_params") or {}),
        }
        frame_shape = tuple((doc.get("dataset_params") or {}).get("frame_shape", (256, 256, 3)))
        estimator = model.get("motion_estimator", "keypoint_detector")
        if estimator not in ESTIMATOR_CONFIGS:
            raise ValueError(f"unknown motion_estimator {estimator!r} (known: {', '.join(ESTIMATOR_CONFIGS)})")
        return cls(
            kp_detector=dataclass_from_dict(ESTIMATOR_CONFIGS[estimator], kp_params, "kp_detector_params"),
            generator=generator,
            discriminator=dataclass_from_dict(DiscriminatorConfig, disc_params, "discriminator_params"),
            frame_shape=frame_shape,
            motion_estimator=estimator,
            align_corners=align_corners,
            raw=doc,
            name=name,
            face=face,
            family=family,
        )

    @classmethod
    def from_yaml_text(cls, text: str, name: str = "model") -> ModelConfig:
        return cls.from_dict(yaml.safe_load(text), name)

    def with_align_corners(self, value: bool) -> ModelConfig:
        """A copy whose ``grid_sample`` calls use ``align_corners=value``."""
        raw = copy.deepcopy(self.raw)
        raw["model_params"].setdefault("common_params", {})["align_corners"] = bool(value)
        return ModelConfig.from_dict(raw, self.name)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.raw, sort_keys=False)

    @property
    def num_kp(self) -> int:
        return self.kp_detector.num_kp

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) the networks run at."""
        return int(self.frame_shape[0]), int(self.frame_shape[1])


def builtin_configs() -> dict[str, Path]:
    """Shipped configs by name, e.g. ``"vox-256"`` or ``"fomm/vox-256"``."""
    found = {}
    for path in sorted(CONFIG_DIR.glob("*/*.yaml")):
        found[f"{path.parent.name}/{path.stem}"] = path
        found.setdefault(path.stem, path)
    return found


def resolve_config_path(name_or_path: str | os.PathLike) -> Path:
    path = Path(name_or_path)
    if path.exists():
        return path
    builtin = builtin_configs()
    key = str(name_or_path).removesuffix(".yaml")
    if key in builtin:
        return builtin[key]
    names = ", ".join(k for k in builtin if "/" not in k)
    raise InputError(name_or_path, f"no such config file (built-in configs: {names})")


def load_config_document(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """The YAML document of a config file or built-in name, read with ``yaml.safe_load``
    (no tags that build Python objects); user errors become :class:`InputError`."""
    path = resolve_config_path(name_or_path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read config ({exc.__class__.__name__})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        if "python/" in str(exc):
            raise InputError(
                path, f"not a model config: YAML tags that build Python objects are not read{where}"
            ) from None
        raise InputError(path, f"not valid YAML{where}") from None
    if doc is None:
        raise InputError(path, "the config file is empty")
    if not isinstance(doc, dict) or not isinstance(doc.get("model_params"), dict):
        raise InputError(path, "not a model config: no 'model_params' section")
    return doc


def config_family(config: str | os.PathLike | ModelConfig | Any) -> str:
    """The family a config (path, built-in name or loaded config) names."""
    if isinstance(config, (str, os.PathLike)):
        doc = load_config_document(config)
        family = doc["model_params"].get("family", FAMILY)
        if not isinstance(family, str):
            raise InputError(resolve_config_path(config), f"model_params.family must be a name, got {family!r}")
        return family
    return getattr(config, "family", FAMILY)


def load_config(name_or_path: str | os.PathLike) -> ModelConfig:
    """Load a config YAML by path or built-in name; user errors become :class:`InputError`."""
    path = resolve_config_path(name_or_path)
    doc = load_config_document(path)
    try:
        return ModelConfig.from_dict(doc, name=path.stem)
    except (ValueError, TypeError) as exc:
        raise InputError(path, f"not a model config: {exc}") from None
