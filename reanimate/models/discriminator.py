"""Multi-scale patch discriminator (FOMM Sec. 3.4; Pix2Pix-style), optionally
conditioned on keypoint heatmaps (the ``-adv`` configs)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..geometry import keypoints_to_gaussian
from ..motion import Keypoints
from .blocks import ConvBlock, feature_width, scale_key


@dataclass
class DiscriminatorConfig:
    """``model_params.discriminator_params`` plus ``common_params`` (official keys)."""

    scales: list[float] = field(default_factory=list)  # the reference default: none
    num_channels: int = 3
    block_expansion: int = 64
    num_blocks: int = 4
    max_features: int = 512
    sn: bool = False  # spectral normalisation of every convolution
    use_kp: bool = False  # concatenate the keypoint heatmaps to the image
    num_kp: int = 10
    kp_variance: float = 0.01


class PatchDiscriminator(nn.Module):
    """``forward(image (B, C, H, W), kp) -> (feature_maps, prediction_map (B, 1, h, w))``."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        in_features = config.num_channels + (config.num_kp if config.use_kp else 0)

        def width(level):
            return feature_width(config.block_expansion, level, config.max_features)

        blocks = []
        for i in range(config.num_blocks):
            blocks.append(
                ConvBlock(
                    in_features if i == 0 else width(i),
                    width(i + 1),
                    kernel_size=4,
                    padding=0,
                    resample="down" if i != config.num_blocks - 1 else "none",
                    norm="instance" if i != 0 else None,
                    activation="leaky_relu",
                    spectral_norm=config.sn,
                )
            )
        self.down_blocks = nn.ModuleList(blocks)
        self.conv = nn.Conv2d(width(config.num_blocks), 1, kernel_size=1)
        if config.sn:
            self.conv = nn.utils.spectral_norm(self.conv)

    def forward(self, image: torch.Tensor, kp: Keypoints | None = None):
        out = image
        if self.config.use_kp:
            assert kp is not None, "this discriminator is conditioned on keypoints"
            heatmap = keypoints_to_gaussian(kp.value, image.shape[2:], self.config.kp_variance)
            out = torch.cat([out, heatmap], dim=1)
        feature_maps = []
        for block in self.down_blocks:
            out = block(out)
            feature_maps.append(out)
        return feature_maps, self.conv(out)


class MultiScaleDiscriminator(nn.Module):
    """One :class:`PatchDiscriminator` per image scale.

    ``forward(pyramid: {scale: (B, C, H*s, W*s)}, kp) -> {scale: (feature_maps, prediction_map)}``.
    """

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        self.discs = nn.ModuleDict({scale_key(s): PatchDiscriminator(config) for s in config.scales})

    def forward(self, pyramid: dict[float, torch.Tensor], kp: Keypoints | None = None):
        return {s: self.discs[scale_key(s)](pyramid[s], kp) for s in self.config.scales}
