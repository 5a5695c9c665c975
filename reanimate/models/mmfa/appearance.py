"""Appearance feature extractor (MMFA Sec. 3.2 / supp. A.1, face-vid2vid Sec. 3.1): the
source image as a 3-D feature volume that the dense motion warps and the generator decodes.

face-vid2vid's layout (and MMFA's, which keeps it): a 7x7 conv, two down blocks, a 1x1
conv to ``C * D`` channels, a reshape to a ``C x D`` volume and 3-D residual blocks; at
256x256 the volume is ``32 x 16 x 64 x 64``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..blocks import ConvBlock, ResBlock, feature_width


@dataclass
class AppearanceConfig:
    """Defaults: face-vid2vid's vox-256 sizes (``feature_channel`` 32, ``reshape_depth`` 16)."""

    num_channels: int = 3  # image channels
    feature_channels: int = 32  # C of the volume
    depth: int = 16  # D of the volume
    block_expansion: int = 64  # width of the first conv; doubled by each down block
    max_features: int = 512  # cap of the down blocks' widths
    num_down_blocks: int = 2  # the volume is H / 2^n x W / 2^n
    num_res_blocks: int = 6  # 3-D residual blocks on the volume


class AppearanceFeatureExtractor(nn.Module):
    """``forward(image (B, num_channels, H, W)) -> (B, C, D, H / 4, W / 4)`` (``H / 2^n``
    for ``num_down_blocks = n``)."""

    def __init__(self, config: AppearanceConfig):
        super().__init__()
        self.config = config
        c = config
        self.first = ConvBlock(c.num_channels, c.block_expansion, kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(
            ConvBlock(
                feature_width(c.block_expansion, i, c.max_features),
                feature_width(c.block_expansion, i + 1, c.max_features),
                resample="down",
            )
            for i in range(c.num_down_blocks)
        )
        width = feature_width(c.block_expansion, c.num_down_blocks, c.max_features)
        self.to_volume = nn.Conv2d(width, c.feature_channels * c.depth, kernel_size=1)
        self.res_blocks = nn.Sequential(*(ResBlock(c.feature_channels, dims=3) for _ in range(c.num_res_blocks)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.first(image)
        for block in self.down_blocks:
            out = block(out)
        out = self.to_volume(out)
        b, _, h, w = out.shape
        volume = out.view(b, self.config.feature_channels, self.config.depth, h, w)
        return self.res_blocks(volume)
