"""Occlusion-aware generator (FOMM Sec. 3.2-3.3): encode the source, warp its features
with the dense motion, mask occluded regions, decode (Johnson-style architecture).

Two options of the MRAA / MoTrans generators (off by default: the FOMM generator):

``skips`` (MRAA ``modules/generator.py``, MTIA ``modules/generator.py``)
    U-Net skip connections. Before each up block, after the last one and on the output
    image, the encoder's feature map of that resolution (the source image itself for
    the output) is warped by the same deformation and blended in with the occlusion map
    ``O`` at that resolution: ``out = O * warp(skip) + (1 - O) * out`` (without an
    occlusion map the warped skip replaces ``out``). No parameters are added.
``bg_predictor_params`` (``model_params.bg_predictor_params``)
    A :class:`~reanimate.models.background.BackgroundMotionPredictor` (``bg_predictor``)
    whose affine map from (source, driving) moves the background component of the
    dense motion. It is part of the generator, so it is saved, loaded and optimised with
    it (``generator.bg_predictor.*``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..motion import Keypoints
from .background import BackgroundMotionConfig, BackgroundMotionPredictor
from .blocks import ConvBlock, ResBlock, feature_width
from .dense_motion import DenseMotion, DenseMotionConfig


@dataclass
class GeneratorConfig:
    """``model_params.generator_params`` merged with ``common_params`` (official keys);
    optional keys default as in the reference constructor."""

    num_kp: int = 10
    num_channels: int = 3
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    estimate_occlusion_map: bool = False
    estimate_jacobian: bool = False  # accepted for config compatibility; the keypoints decide
    dense_motion_params: DenseMotionConfig | None = None
    align_corners: bool = True
    skips: bool = False  # U-Net skip connections (MRAA / MTIA key)
    bg_predictor_params: BackgroundMotionConfig | None = None  # set from model_params.bg_predictor_params


@dataclass
class SourceEncoding:
    """What the generator needs from a source image, computed once per source.

    image: ``(1 or B, C, H, W)``; features: ``(1 or B, F, H / 2^n, W / 2^n)``;
    motion_input: the source at the dense-motion network's resolution; skips (only with
    ``skips``): the encoder's outputs finest first, ``skips[i]`` at ``H / 2^i``
    (``skips[-1]`` is ``features``).
    """

    image: torch.Tensor
    features: torch.Tensor
    motion_input: torch.Tensor | None
    skips: list[torch.Tensor] | None = None


@dataclass
class GeneratorOutput:
    """prediction: ``(B, C, H, W)`` in [0, 1]. The dense-motion fields are at its
    resolution (see :class:`DenseMotionOutput`); ``deformed`` is the source warped by
    the dense flow at full resolution (only when asked for, and always with ``skips``);
    ``background``: the ``(B, 2, 3)`` background affine map used, or None (identity)."""

    prediction: torch.Tensor
    mask: torch.Tensor | None = None
    occlusion_map: torch.Tensor | None = None
    sparse_deformed: torch.Tensor | None = None
    deformation: torch.Tensor | None = None
    deformed: torch.Tensor | None = None
    background: torch.Tensor | None = None


def _width(config: GeneratorConfig, level: int) -> int:
    return feature_width(config.block_expansion, level, config.max_features)


class Generator(nn.Module):
    """``forward(source (B, C, H, W), kp_driving, kp_source, driving=None) -> GeneratorOutput``.

    For animation the source is encoded once (:meth:`encode`) and every batch of
    driving keypoints is decoded against it (:meth:`decode`). With a background
    predictor, ``forward`` predicts the background motion from ``driving`` (``(B, C, H,
    W)``; None: the identity); ``decode`` takes the map itself (``background``, see
    :meth:`predict_background`).
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        n = config.num_down_blocks
        self.dense_motion_network = DenseMotion(config.dense_motion_params) if config.dense_motion_params else None
        if self.dense_motion_network is None and (config.skips or config.bg_predictor_params is not None):
            raise ValueError("generator_params.skips and bg_predictor_params need dense_motion_params")
        self.first = ConvBlock(config.num_channels, config.block_expansion, kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(
            ConvBlock(_width(config, i), _width(config, i + 1), resample="down") for i in range(n)
        )
        self.up_blocks = nn.ModuleList(
            ConvBlock(_width(config, n - i), _width(config, n - i - 1), resample="up") for i in range(n)
        )
        self.bottleneck = nn.Sequential()
        for i in range(config.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock(_width(config, n)))
        self.final = nn.Conv2d(config.block_expansion, config.num_channels, kernel_size=7, padding=3)
        # Built last, so that a seed gives the other networks the same weights with or without it.
        self.bg_predictor = (
            BackgroundMotionPredictor(config.bg_predictor_params) if config.bg_predictor_params is not None else None
        )

    def encode(self, source: torch.Tensor) -> SourceEncoding:
        out = self.first(source)
        skips = [out]
        for block in self.down_blocks:
            out = block(out)
            skips.append(out)
        motion_input = self.dense_motion_network.downsample(source) if self.dense_motion_network else None
        return SourceEncoding(source, out, motion_input, skips if self.config.skips else None)

    def predict_background(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor | None:
        """The ``(B, 2, 3)`` background map from driving to source coordinates, or None
        without a background predictor. ``source`` may have batch size 1."""
        return self.bg_predictor(source, driving) if self.bg_predictor is not None else None

    def warp(self, x: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        """Sample ``x (B, C, H, W)`` at ``deformation (B, h, w, 2)``, resized bilinearly to (H, W)."""
        if deformation.shape[1:3] != x.shape[2:]:
            deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=x.shape[2:], mode="bilinear")
            deformation = deformation.permute(0, 2, 3, 1)
        if x.shape[0] != deformation.shape[0]:
            x = x.expand(deformation.shape[0], *x.shape[1:])
        return F.grid_sample(x, deformation.to(x.dtype), align_corners=self.config.align_corners)

    @staticmethod
    def _occlusion_at(occlusion: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The occlusion map ``(B, 1, h, w)`` resized bilinearly to ``x``'s resolution."""
        if occlusion.shape[2:] != x.shape[2:]:
            occlusion = F.interpolate(occlusion, size=x.shape[2:], mode="bilinear")
        return occlusion

    def _skip(self, out: torch.Tensor, warped: torch.Tensor, occlusion: torch.Tensor | None) -> torch.Tensor:
        """U-Net skip: ``O * warped + (1 - O) * out``; ``warped`` alone without ``O``."""
        if occlusion is None:
            return warped
        occlusion = self._occlusion_at(occlusion, warped)
        return warped * occlusion + out * (1 - occlusion)

    def decode(
        self,
        source: SourceEncoding,
        kp_driving: Keypoints,
        kp_source: Keypoints,
        return_deformed: bool = False,
        background: torch.Tensor | None = None,
    ) -> GeneratorOutput:
        """``background``: ``(B, 2, 3)`` background motion (:meth:`predict_background`)
        or None for the identity."""
        out = source.features
        result = GeneratorOutput(prediction=None, background=background)
        motion = None
        if self.dense_motion_network is not None:
            motion = self.dense_motion_network(
                source.motion_input, kp_driving, kp_source, downsampled=True, background=background
            )
            result.mask, result.sparse_deformed = motion.mask, motion.sparse_deformed
            result.deformation, result.occlusion_map = motion.deformation, motion.occlusion_map
            out = self.warp(out, motion.deformation)
            if motion.occlusion_map is not None:
                out = out * self._occlusion_at(motion.occlusion_map, out)
            if return_deformed or self.config.skips:
                result.deformed = self.warp(source.image, motion.deformation)
        skips = source.skips if self.config.skips else None  # skips imply a dense motion network
        if self.config.skips and skips is None:
            raise ValueError("the source encoding has no skip features; encode it with this generator")
        out = self.bottleneck(out)
        for i, block in enumerate(self.up_blocks):
            if skips is not None:
                out = self._skip(out, self.warp(skips[-(i + 1)], motion.deformation), motion.occlusion_map)
            out = block(out)
        if skips is not None:
            out = self._skip(out, self.warp(skips[0], motion.deformation), motion.occlusion_map)
        result.prediction = torch.sigmoid(self.final(out))
        if skips is not None:
            result.prediction = self._skip(result.prediction, result.deformed, motion.occlusion_map)
        return result

    def forward(
        self,
        source: torch.Tensor,
        kp_driving: Keypoints,
        kp_source: Keypoints,
        return_deformed: bool = True,
        driving: torch.Tensor | None = None,
    ) -> GeneratorOutput:
        background = self.predict_background(source, driving) if driving is not None else None
        return self.decode(self.encode(source), kp_driving, kp_source, return_deformed, background)
