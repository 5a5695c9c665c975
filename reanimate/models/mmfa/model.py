"""MMFA as one container of its networks, and its size and cost for ``reanimate model-info``."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..blocks import ImagePyramid
from ..complexity import count_macs
from ..discriminator import MultiScaleDiscriminator
from ..fomm import count_parameters
from .appearance import AppearanceFeatureExtractor
from .canonical_keypoints import CanonicalKeypointDetector
from .config import MMFAConfig, load_mmfa_config
from .dense_motion import DenseMotion3D
from .expression import ExpressionDecoder, ExpressionEncoder
from .generator import MultiScaleGenerator
from .head_pose import HeadPoseEstimator

#: the networks in construction order (a seed gives each the same weights whether or
#: not the discriminator, built last, is there); ``parts()`` keys.
PART_NAMES = (
    "appearance",
    "canonical",
    "head_pose",
    "expression_encoder",
    "expression_decoder",
    "dense_motion",
    "generator",
)


class MMFAModel(nn.Module):
    """The MMFA networks: ``appearance`` (source -> feature volume), ``canonical``
    (canonical keypoints), ``head_pose`` (scale, translation, optional rotation bins),
    ``expression_encoder`` / ``expression_decoder`` (Eq. 4), ``dense_motion`` and
    ``generator``, and for training ``discriminator`` (FOMM's multi-scale patch
    discriminator without keypoints). Only computes: the keypoint transform of Eq. 5,
    the losses and the training step live elsewhere."""

    def __init__(self, config: MMFAConfig, with_discriminator: bool = False):
        super().__init__()
        self.config = config
        self.appearance = AppearanceFeatureExtractor(config.appearance)
        self.canonical = CanonicalKeypointDetector(config.canonical)
        self.head_pose = HeadPoseEstimator(config.head_pose)
        self.expression_encoder = ExpressionEncoder(config.expression_encoder)
        self.expression_decoder = ExpressionDecoder(config.expression_decoder)
        self.dense_motion = DenseMotion3D(config.dense_motion)
        self.generator = MultiScaleGenerator(config.generator)
        self.discriminator = MultiScaleDiscriminator(config.discriminator) if with_discriminator else None

    def parts(self) -> dict[str, nn.Module]:
        parts = {name: getattr(self, name) for name in PART_NAMES}
        if self.discriminator is not None:
            parts["discriminator"] = self.discriminator
        return parts


def build_mmfa(config: MMFAConfig, with_discriminator: bool = False, seed: int | None = None) -> MMFAModel:
    """Build the networks of a config (random init; ``seed`` makes it reproducible
    without touching the global random state)."""
    if seed is None:
        return MMFAModel(config, with_discriminator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MMFAModel(config, with_discriminator)


def mmfa_report(config: MMFAConfig) -> list[tuple[str, int, int]]:
    """``(network, trainable parameters, MACs)`` of every network for one sample at the
    config's resolution (the source and the driving frame equal, in eval mode; the
    discriminator on the full-size output)."""
    model = build_mmfa(config, with_discriminator=True, seed=0).eval()
    h, w = config.image_size
    image = torch.rand(1, config.appearance.num_channels, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        volume = model.appearance(image)
        kp = model.canonical(image)
        f = model.expression_encoder(image)
        motion = model.dense_motion(volume, kp, kp)
    pyramid = ImagePyramid(config.discriminator.scales, config.appearance.num_channels)
    runs = {
        "appearance": lambda: model.appearance(image),
        "canonical": lambda: model.canonical(image),
        "head_pose": lambda: model.head_pose(image),
        "expression_encoder": lambda: model.expression_encoder(image),
        "expression_decoder": lambda: model.expression_decoder(f, kp),
        "dense_motion": lambda: model.dense_motion(volume, kp, kp),
        "generator": lambda: model.generator(
            volume, motion.deformation, motion.occlusion, model.generator.encode_source(image)
        ),
        "discriminator": lambda: model.discriminator(pyramid(image)),
    }
    return [
        (name, count_parameters(part), count_macs(part, run=runs[name])["total"])
        for name, part in model.parts().items()
    ]


def mmfa_model_info(config_name_or_path: str | os.PathLike) -> tuple[str, list[tuple[str, int, int]]]:
    """For ``reanimate model-info``: a title and ``(network, parameters, MACs)`` rows."""
    config = load_mmfa_config(config_name_or_path)
    h, w = config.image_size
    return f"{config_name_or_path} (mmfa) at {h}x{w}", mmfa_report(config)
