"""Canonical keypoint detector (MMFA Sec. 3.2, the detector of face-vid2vid Sec. 3.1):
K 3-D keypoints ``p_C`` of the face in a neutral pose and expression, the identity's
spatial anchors (Eq. 5).

face-vid2vid's layout: the image downsampled to a quarter, a 2-D encoder of down blocks,
a 1x1 conv whose channels are reshaped into a ``C' x D`` volume, a 3-D decoder of up
blocks (H and W doubled, depth kept; no skip connections), a 3x3x3 conv to K heatmaps,
a softmax over each whole volume and the expected coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...geometry import heatmap_to_keypoints, spatial_softmax
from ..blocks import AntiAliasDownsample, ConvBlock, HourglassEncoder, feature_width


@dataclass
class CanonicalKeypointConfig:
    """Defaults: face-vid2vid's vox-256 ``kp_detector_params`` (K = 15, its ``num_kp``)."""

    num_kp: int = 15
    num_channels: int = 3
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5  # down blocks (2-D) and as many up blocks (3-D)
    heatmap_depth: int = 16  # D of the heatmap volume (``reshape_depth``)
    temperature: float = 0.1  # softmax temperature of the heatmaps
    scale_factor: float = 0.25  # the image is downsampled first (256 -> 64)
    kp_kernel_size: int = 3  # the heatmap conv (face-vid2vid: 3x3x3)


class CanonicalKeypointDetector(nn.Module):
    """``forward(image (B, num_channels, H, W)) -> (B, K, 3)`` keypoints in [-1, 1], x first
    (x right, y down, z the depth axis of the heatmap volume), grid_sample's 3-D grid order.

    ``return_heatmap=True`` also returns the heatmaps ``(B, K, D, h, w)`` (each summing
    to 1), ``h = H * scale_factor``. ``H * scale_factor`` must be divisible by
    ``2^num_blocks``.
    """

    def __init__(self, config: CanonicalKeypointConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = HourglassEncoder(c.block_expansion, c.num_channels, c.num_blocks, c.max_features)
        deepest = feature_width(c.block_expansion, c.num_blocks, c.max_features)
        self.to_volume = nn.Conv2d(deepest, deepest * c.heatmap_depth, kernel_size=1)
        self.up_blocks = nn.ModuleList(
            ConvBlock(
                feature_width(c.block_expansion, c.num_blocks - i, c.max_features),
                feature_width(c.block_expansion, c.num_blocks - i - 1, c.max_features),
                resample="up",
                dims=3,
            )
            for i in range(c.num_blocks)
        )
        self.kp = nn.Conv3d(c.block_expansion, c.num_kp, c.kp_kernel_size, padding=c.kp_kernel_size // 2)
        if c.scale_factor != 1:
            self.down = AntiAliasDownsample(c.num_channels, c.scale_factor)

    def forward(self, image: torch.Tensor, return_heatmap: bool = False):
        if self.config.scale_factor != 1:
            image = self.down(image)
        out = self.encoder(image)[-1]
        out = self.to_volume(out)
        b, ch, h, w = out.shape
        out = out.view(b, ch // self.config.heatmap_depth, self.config.heatmap_depth, h, w)
        for block in self.up_blocks:
            out = block(out)
        heatmap = spatial_softmax(self.kp(out), self.config.temperature)  # (B, K, D, h, w)
        keypoints = heatmap_to_keypoints(heatmap)  # (B, K, 3): x, y, z
        return (keypoints, heatmap) if return_heatmap else keypoints
