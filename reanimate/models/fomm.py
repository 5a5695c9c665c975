"""The First Order Motion Model as one container of its networks."""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .discriminator import MultiScaleDiscriminator
from .generator import Generator
from .keypoint_detector import KeypointDetector
from .motion_transformer import MotionTransformer

# Motion estimators selectable with ``model_params.motion_estimator`` (configs: config.ESTIMATOR_CONFIGS).
MOTION_ESTIMATORS = {"keypoint_detector": KeypointDetector, "transformer": MotionTransformer}


class FirstOrderModel(nn.Module):
    """``kp_detector`` (the motion estimator), ``generator`` (with its dense motion
    network and, when configured, the background motion predictor
    ``generator.bg_predictor``) and, for training, ``discriminator``. State-dict prefixes
    match the top-level keys of the reference checkpoints."""

    def __init__(self, config: ModelConfig, with_discriminator: bool = True):
        super().__init__()
        self.config = config
        try:
            estimator = MOTION_ESTIMATORS[config.motion_estimator]
        except KeyError:
            raise ValueError(
                f"unknown motion_estimator {config.motion_estimator!r} (known: {', '.join(MOTION_ESTIMATORS)})"
            ) from None
        self.kp_detector = estimator(config.kp_detector)
        self.generator = Generator(config.generator)
        self.discriminator = MultiScaleDiscriminator(config.discriminator) if with_discriminator else None

    def parts(self) -> dict[str, nn.Module]:
        parts = {"kp_detector": self.kp_detector, "generator": self.generator}
        if self.discriminator is not None:
            parts["discriminator"] = self.discriminator
        return parts


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def build_model(config: ModelConfig, with_discriminator: bool = False, seed: int | None = None) -> FirstOrderModel:
    """Build the networks of a config (random init; ``seed`` makes it reproducible)."""
    if seed is None:
        return FirstOrderModel(config, with_discriminator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FirstOrderModel(config, with_discriminator)
