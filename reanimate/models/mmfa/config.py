"""MMFA model configuration: the typed view of a YAML ``model_params`` section.

Layout (``configs/mmfa/*.yaml``), in the style of the FOMM / face-vid2vid configs::

    model_params:
      family: mmfa
      face: true                      # optional, as for FOMM configs
      common_params: {num_kp, num_channels, feature_channels, depth, align_corners}
      appearance_params: {...}        # AppearanceConfig
      canonical_kp_params: {...}      # CanonicalKeypointConfig
      head_pose_params: {...}         # HeadPoseConfig
      expression_encoder_params: {...}
      expression_decoder_params: {...}
      dense_motion_params: {...}      # DenseMotion3DConfig
      generator_params: {...}         # MultiScaleGeneratorConfig
      discriminator_params: {...}     # reanimate.models.discriminator.DiscriminatorConfig

The ``common_params`` are set once and copied into every network that uses them
(``feature_channels`` and ``depth`` are the appearance volume's ``C`` and ``D``); a
network section that repeats one is an error. Unlike the FOMM loader (which ignores
unknown keys of forks), a new family has no forks: unknown keys are errors.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from ...errors import InputError
from ..config import load_config_document, resolve_config_path
from ..discriminator import DiscriminatorConfig
from .appearance import AppearanceConfig
from .canonical_keypoints import CanonicalKeypointConfig
from .dense_motion import DenseMotion3DConfig
from .expression import ExpressionDecoderConfig, ExpressionEncoderConfig
from .generator import MultiScaleGeneratorConfig
from .head_pose import HeadPoseConfig

#: the family name (:mod:`reanimate.animators.registry`) whose configs these are
FAMILY = "mmfa"

#: ``common_params`` keys and their defaults (face-vid2vid vox-256).
COMMON_DEFAULTS = {"num_kp": 15, "num_channels": 3, "feature_channels": 32, "depth": 16, "align_corners": True}


def default_discriminator() -> DiscriminatorConfig:
    """face-vid2vid's vox-256 ``discriminator_params`` (one scale, 32 -> 512, 4 blocks,
    spectral norm), the defaults of ``discriminator_params``; no keypoint heatmaps."""
    return DiscriminatorConfig(
        scales=[1], block_expansion=32, max_features=512, num_blocks=4, sn=True, num_kp=COMMON_DEFAULTS["num_kp"]
    )


#: ``model_params`` section -> (MMFAConfig field, its defaults).
SECTIONS = {
    "appearance_params": ("appearance", AppearanceConfig),
    "canonical_kp_params": ("canonical", CanonicalKeypointConfig),
    "head_pose_params": ("head_pose", HeadPoseConfig),
    "expression_encoder_params": ("expression_encoder", ExpressionEncoderConfig),
    "expression_decoder_params": ("expression_decoder", ExpressionDecoderConfig),
    "dense_motion_params": ("dense_motion", DenseMotion3DConfig),
    "generator_params": ("generator", MultiScaleGeneratorConfig),
    "discriminator_params": ("discriminator", default_discriminator),
}
_TOP_LEVEL = {"family", "face", "common_params", *SECTIONS}


def _strict_dataclass(base, params: dict[str, Any], where: str, reserved: set[str]):
    """``base`` (a dataclass instance: the defaults) with ``params`` replaced; unknown keys
    and keys that belong in ``common_params`` are errors."""
    if not isinstance(params, dict):
        raise ValueError(f"{where} must be a mapping, got {type(params).__name__}")
    names = {f.name for f in dataclasses.fields(base)}
    common = sorted(set(params) & reserved & names)
    if common:
        raise ValueError(f"{where}: {', '.join(common)} belong(s) in model_params.common_params")
    unknown = sorted(set(params) - names)
    if unknown:
        known = ", ".join(sorted(names - reserved))
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {known})")
    return dataclasses.replace(base, **params)


def _with_common(config, common: dict[str, Any]):
    """A copy of ``config`` with the common values it has fields for."""
    names = {f.name for f in dataclasses.fields(config)}
    return dataclasses.replace(config, **{k: v for k, v in common.items() if k in names})


@dataclass
class MMFAConfig:
    """The networks' configs, the shared ``num_kp`` and the ``image_size`` (height,
    width) the networks run at. The defaults are the paper's 256x256 model."""

    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    canonical: CanonicalKeypointConfig = field(default_factory=CanonicalKeypointConfig)
    head_pose: HeadPoseConfig = field(default_factory=HeadPoseConfig)
    expression_encoder: ExpressionEncoderConfig = field(default_factory=ExpressionEncoderConfig)
    expression_decoder: ExpressionDecoderConfig = field(default_factory=ExpressionDecoderConfig)
    dense_motion: DenseMotion3DConfig = field(default_factory=DenseMotion3DConfig)
    generator: MultiScaleGeneratorConfig = field(default_factory=MultiScaleGeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=default_discriminator)
    num_kp: int = 15
    image_size: tuple[int, int] = (256, 256)
    face: bool = False
    name: str = "model"
    raw: dict[str, Any] = field(default_factory=dict)
    family: str = FAMILY

    def __post_init__(self):
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError (one line) when the networks do not fit together."""
        k = {self.num_kp, self.canonical.num_kp, self.expression_decoder.num_kp, self.dense_motion.num_kp}
        if len(k) != 1:
            raise ValueError(f"num_kp differs between the networks ({sorted(k)}): set it in common_params")
        a, dm, g = self.appearance, self.dense_motion, self.generator
        volume = {(a.feature_channels, a.depth), (dm.feature_channels, dm.depth), (g.feature_channels, g.depth)}
        if len(volume) != 1:
            raise ValueError(f"the volume's (channels, depth) differ between the networks: {sorted(volume)}")
        if self.expression_encoder.feature_dim != self.expression_decoder.feature_dim:
            raise ValueError(
                f"expression_encoder_params.feature_dim {self.expression_encoder.feature_dim} != "
                f"expression_decoder_params.feature_dim {self.expression_decoder.feature_dim}"
            )
        if self.discriminator.use_kp:
            raise ValueError("discriminator_params.use_kp: MMFA's discriminator takes no keypoints (3-D), set false")
        height, width = self.image_size
        down = 2**a.num_down_blocks
        if height % down or width % down:
            raise ValueError(f"image size {height}x{width} is not divisible by 2^num_down_blocks = {down}")
        h, w = height // down, width // down
        levels = 2**dm.num_blocks
        if h % levels or w % levels:
            raise ValueError(
                f"the {h}x{w} volume is not divisible by 2^dense_motion_params.num_blocks = {levels}: use fewer blocks"
            )
        top = h * 2 ** (g.num_scales - 1)
        if top != height:
            raise ValueError(
                f"the generator's largest image would be {top} high, not {height}: "
                f"set generator_params.num_scales to {(height // h).bit_length()}"
            )
        kp_side = height * self.canonical.scale_factor, width * self.canonical.scale_factor
        kp_levels = 2**self.canonical.num_blocks
        if any(s != int(s) or int(s) % kp_levels for s in kp_side):
            raise ValueError(
                f"canonical_kp_params: {height}x{width} x scale_factor {self.canonical.scale_factor} must be "
                f"divisible by 2^num_blocks = {kp_levels}"
            )

    @property
    def volume_size(self) -> tuple[int, int, int]:
        """``(D, h, w)`` of the appearance volume."""
        down = 2**self.appearance.num_down_blocks
        return self.appearance.depth, self.image_size[0] // down, self.image_size[1] // down

    @classmethod
    def from_dict(
        cls, params: dict[str, Any], image_size: tuple[int, int] = (256, 256), name: str = "model"
    ) -> MMFAConfig:
        """From a ``model_params`` mapping; ``image_size`` is the dataset's frame (height,
        width). Raises ValueError (one line) on unknown or misplaced keys and on
        networks that do not fit together."""
        if not isinstance(params, dict):
            raise ValueError("model_params must be a mapping")
        unknown = sorted(set(params) - _TOP_LEVEL)
        if unknown:
            raise ValueError(
                f"model_params: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_TOP_LEVEL))})"
            )
        family = params.get("family", FAMILY)
        if family != FAMILY:
            raise ValueError(f"model_params.family is {family!r}: not a config of the {FAMILY} family")
        face = params.get("face", False)
        if not isinstance(face, bool):
            raise ValueError(f"model_params.face must be true or false, got {face!r}")
        common_given = params.get("common_params") or {}
        if not isinstance(common_given, dict):
            raise ValueError("model_params.common_params must be a mapping")
        bad = sorted(set(common_given) - set(COMMON_DEFAULTS))
        if bad:
            raise ValueError(f"common_params: unknown key(s) {', '.join(bad)} (known: {', '.join(COMMON_DEFAULTS)})")
        common = {**COMMON_DEFAULTS, **common_given}
        reserved = set(COMMON_DEFAULTS)
        sub = {}
        for section, (attribute, defaults) in SECTIONS.items():
            config = _strict_dataclass(defaults(), params.get(section) or {}, f"model_params.{section}", reserved)
            sub[attribute] = _with_common(config, common)
        return cls(
            **sub,
            num_kp=common["num_kp"],
            image_size=tuple(image_size),
            face=face,
            name=name,
            raw={"model_params": copy.deepcopy(params)},
        )

    def to_yaml(self) -> str:
        """The YAML document (``raw``), as embedded in own-format checkpoints."""
        return yaml.safe_dump(self.raw, sort_keys=False)

    @classmethod
    def from_yaml_text(cls, text: str, name: str = "model") -> MMFAConfig:
        return cls.from_document(yaml.safe_load(text), name=name)

    @classmethod
    def from_document(cls, doc: dict[str, Any], name: str = "model") -> MMFAConfig:
        """From a whole YAML document: ``model_params`` and ``dataset_params.frame_shape``."""
        if not isinstance(doc, dict) or not isinstance(doc.get("model_params"), dict):
            raise ValueError("no 'model_params' section")
        frame_shape = (doc.get("dataset_params") or {}).get("frame_shape", (256, 256, 3))
        config = cls.from_dict(doc["model_params"], image_size=tuple(frame_shape[:2]), name=name)
        config.raw = copy.deepcopy(doc)
        return config


def load_mmfa_config(name_or_path: str | os.PathLike) -> MMFAConfig:
    """Load an MMFA config by path or built-in name (``mmfa/vox-256``); user errors
    become :class:`~reanimate.errors.InputError`."""
    path = resolve_config_path(name_or_path)
    doc = load_config_document(path)
    try:
        return MMFAConfig.from_document(doc, name=path.stem)
    except (ValueError, TypeError) as exc:
        raise InputError(path, f"not an MMFA config: {exc}") from None
