"""A tiny MMFA model (64 x 64, 6 keypoints, narrow networks: fast on CPU) and its own-format
checkpoint with random weights.

Import from tests as ``from mmfa_tiny import tiny_config, tiny_checkpoint``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from reanimate import checkpoint as ckpt
from reanimate.models.config import load_config_document
from reanimate.models.mmfa import MMFAConfig, build_mmfa

SIZE = 64


def tiny_document(face: bool = True, learn_rotation: bool = True) -> dict:
    """The YAML document of ``mmfa/heads-64`` with narrowed networks (no train_params
    changes); ``learn_rotation=False``: the rotation comes from the face mesh (the animator
    then asks for the landmarks of every frame)."""
    doc = copy.deepcopy(load_config_document("mmfa/heads-64"))
    mp = doc["model_params"]
    mp["face"] = face
    mp["common_params"].update(num_kp=6, feature_channels=4, depth=4)
    mp["appearance_params"].update(block_expansion=8, max_features=16, num_res_blocks=1)
    mp["canonical_kp_params"].update(block_expansion=4, max_features=32)
    mp["head_pose_params"].update(
        stem_features=8,
        widths=[8, 16],
        blocks=[1, 1],
        learn_rotation=learn_rotation,
        animate_rotation="learned" if learn_rotation else "auto",
    )
    mp["expression_encoder_params"].update(stem_features=8, widths=[8, 16], feature_dim=32, map_channels=4)
    mp["expression_decoder_params"].update(feature_dim=32, hidden_features=[32])
    mp["dense_motion_params"].update(block_expansion=4, max_features=16, num_blocks=2)
    mp["generator_params"].update(features=16)
    mp["discriminator_params"].update(block_expansion=4, max_features=16, num_blocks=2)
    return doc


def tiny_config(face: bool = True, learn_rotation: bool = True) -> MMFAConfig:
    """:func:`tiny_document` as a config."""
    return MMFAConfig.from_document(tiny_document(face, learn_rotation), name="tiny")


def tiny_checkpoint(path: str | Path, face: bool = True, learn_rotation: bool = True, seed: int = 1) -> Path:
    """A random-weight :func:`tiny_config` model saved at ``path`` (.safetensors; its config,
    ``model_params.family: mmfa``, embedded), with BatchNorm statistics as if trained."""
    torch.manual_seed(0)
    model = build_mmfa(tiny_config(face=face, learn_rotation=learn_rotation), seed=seed)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_var.fill_(1.0)
    return ckpt.save(Path(path), model)
