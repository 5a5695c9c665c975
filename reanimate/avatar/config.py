"""An avatar config (``configs/avatar/*.yaml``): which rig, the fields' sizes, ray tracing,
and the training hyper-parameters (the authors' ``IMavatar_supervised.conf`` and supp. 2.5).

.. code-block:: yaml

    model_params:
      family: avatar
      rig: ict                # ict | procedural | {flame: generic_model.pkl, landmarks: landmark_embedding.npy}
      fields: {geometry: {...}, texture: {...}, deformation: {...}}   # reanimate.avatar.fields
      tracing: {bounding_radius: 1.2, num_samples: 100, ...}          # reanimate.avatar.model.TracingConfig
    train_params:
      num_epochs: 60           # supp. 2.5: 60 epochs, lr halved after 40
      epoch_milestones: [40]
      lr: 1.0e-4
      betas: [0.9, 0.999]
      batch_size: 1            # frames per step (the authors': 1)
      num_pixels: 2048         # rays per frame: half uniform, half in the face box
      loss_weights: {rgb: 1, mask: 100, alpha: 50, lbs: 1}

The deformation and texture networks' rig sizes (joints, expressions, pose features) come
from the rig and need not be written; a value that is written must agree with the rig.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import yaml

from .fields import AvatarFieldsConfig, strict_config
from .model import ImplicitAvatar, TracingConfig
from .rig import Rig
from .rigs import load_rig

FAMILY = "avatar"


def fields_for_rig(params: dict[str, Any], rig: Rig) -> AvatarFieldsConfig:
    """The fields' config with the rig's sizes filled in (a written size must agree)."""
    params = copy.deepcopy(params or {})
    sizes = {
        "deformation": {
            "num_joints": rig.num_joints,
            "num_expressions": rig.num_expressions,
            "num_pose_dirs": rig.num_pose_features,
        },
        "texture": {"num_expressions": rig.num_expressions},
    }
    for section, values in sizes.items():
        given = params.setdefault(section, {})
        for key, value in values.items():
            if key in given and given[key] != value:
                raise ValueError(f"fields.{section}.{key} is {given[key]} but rig {rig.name} has {value}")
            given[key] = value
    return AvatarFieldsConfig.from_dict(params)


@dataclass
class AvatarConfig:
    """``model_params`` of an avatar config (the fields are sized once the rig is loaded,
    :func:`fields_for_rig`); ``raw`` the whole document, embedded in checkpoints."""

    rig: str | dict = "ict"
    fields: dict = field(default_factory=dict)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    name: str = "avatar"
    raw: dict = field(default_factory=dict)

    @classmethod
    def from_document(cls, doc: dict, name: str = "avatar") -> AvatarConfig:
        params = copy.deepcopy((doc or {}).get("model_params") or {})
        family = params.pop("family", FAMILY)
        if family != FAMILY:
            raise ValueError(f"not a config of the {FAMILY} family (model_params.family: {family})")
        unknown = sorted(set(params) - {"rig", "fields", "tracing"})
        if unknown:
            raise ValueError(f"model_params: unknown key(s) {', '.join(unknown)}")
        rig = params.get("rig", "ict")
        if not (rig in ("ict", "procedural") or (isinstance(rig, dict) and "flame" in rig)):
            raise ValueError(f"model_params.rig must be ict, procedural or {{flame: FILE}}, got {rig!r}")
        fields = params.get("fields") or {}
        AvatarFieldsConfig.from_dict(copy.deepcopy(fields))  # key check now, sizes with the rig
        tracing = strict_config(TracingConfig, params.get("tracing") or {}, "model_params.tracing")
        return cls(rig=rig, fields=fields, tracing=tracing, name=name, raw=copy.deepcopy(doc))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.raw, sort_keys=False)


def build_avatar(
    config: AvatarConfig, shape: torch.Tensor | None = None, seed: int | None = None, rig: Rig | None = None
) -> ImplicitAvatar:
    """The avatar of a config (random fields, reproducible with ``seed`` without touching
    the global random state; ``shape`` the person's rig identity; ``rig`` the config's,
    if already loaded)."""
    rig = rig if rig is not None else load_rig(config.rig)
    fields = fields_for_rig(config.fields, rig)
    if seed is None:
        return ImplicitAvatar(rig, fields, config.tracing, shape, config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ImplicitAvatar(rig, fields, config.tracing, shape, config)


__all__ = ["FAMILY", "AvatarConfig", "build_avatar", "fields_for_rig"]
