"""Occlusion-aware generator (FOMM Sec. 3.2-3.3): encode the source, warp its features
with the dense motion, mask occluded regions, decode (Johnson-style architecture)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..motion import Keypoints
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


@dataclass
class SourceEncoding:
    """What the generator needs from a source image, computed once per source.

    image: ``(1 or B, C, H, W)``; features: ``(1 or B, F, H / 2^n, W / 2^n)``;
    motion_input: the source at the dense-motion network's resolution.
    """

    image: torch.Tensor
    features: torch.Tensor
    motion_input: torch.Tensor | None


@dataclass
class GeneratorOutput:
    """prediction: ``(B, C, H, W)`` in [0, 1]. The dense-motion fields are at its
    resolution (see :class:`DenseMotionOutput`); ``deformed`` is the source warped by
    the dense flow at full resolution (only when asked for)."""

    prediction: torch.Tensor
    mask: torch.Tensor | None = None
    occlusion_map: torch.Tensor | None = None
    sparse_deformed: torch.Tensor | None = None
    deformation: torch.Tensor | None = None
    deformed: torch.Tensor | None = None


def _width(config: GeneratorConfig, level: int) -> int:
    return feature_width(config.block_expansion, level, config.max_features)


class Generator(nn.Module):
    """``forward(source (B, C, H, W), kp_driving, kp_source) -> GeneratorOutput``.

    For animation the source is encoded once (:meth:`encode`) and every batch of
    driving keypoints is decoded against it (:meth:`decode`).
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        n = config.num_down_blocks
        self.dense_motion_network = DenseMotion(config.dense_motion_params) if config.dense_motion_params else None
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

    def encode(self, source: torch.Tensor) -> SourceEncoding:
        out = self.first(source)
        for block in self.down_blocks:
            out = block(out)
        motion_input = self.dense_motion_network.downsample(source) if self.dense_motion_network else None
        return SourceEncoding(source, out, motion_input)

    def warp(self, x: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        """Sample ``x (B, C, H, W)`` at ``deformation (B, h, w, 2)``, resized bilinearly to (H, W)."""
        if deformation.shape[1:3] != x.shape[2:]:
            deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=x.shape[2:], mode="bilinear")
            deformation = deformation.permute(0, 2, 3, 1)
        if x.shape[0] != deformation.shape[0]:
            x = x.expand(deformation.shape[0], *x.shape[1:])
        return F.grid_sample(x, deformation.to(x.dtype), align_corners=self.config.align_corners)

    def decode(
        self,
        source: SourceEncoding,
        kp_driving: Keypoints,
        kp_source: Keypoints,
        return_deformed: bool = False,
    ) -> GeneratorOutput:
        out = source.features
        result = GeneratorOutput(prediction=None)
        if self.dense_motion_network is not None:
            motion = self.dense_motion_network(source.motion_input, kp_driving, kp_source, downsampled=True)
            result.mask, result.sparse_deformed = motion.mask, motion.sparse_deformed
            result.deformation, result.occlusion_map = motion.deformation, motion.occlusion_map
            out = self.warp(out, motion.deformation)
            if motion.occlusion_map is not None:
                occlusion = motion.occlusion_map
                if occlusion.shape[2:] != out.shape[2:]:
                    occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear")
                out = out * occlusion
            if return_deformed:
                result.deformed = self.warp(source.image, motion.deformation)
        out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        result.prediction = torch.sigmoid(self.final(out))
        return result

    def forward(self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints, return_deformed: bool = True):
        return self.decode(self.encode(source), kp_driving, kp_source, return_deformed)
