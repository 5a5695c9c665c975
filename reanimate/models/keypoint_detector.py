"""FOMM keypoint detector: hourglass -> K softmax heatmaps -> soft-argmax keypoints,
plus an optional Jacobian head (FOMM Sec. 3 / supp. B.1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..geometry import heatmap_to_keypoints, spatial_softmax, weighted_average
from ..motion import Keypoints
from .blocks import AntiAliasDownsample, Hourglass


@dataclass
class KeypointDetectorConfig:
    """``model_params.kp_detector_params`` merged with ``common_params`` (official keys).

    Optional keys default as in the reference constructor (so configs that omit them
    build the same network); required ones default to the vox-256 values."""

    num_kp: int = 10
    num_channels: int = 3
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    temperature: float = 0.1  # softmax temperature of the heatmaps
    estimate_jacobian: bool = False
    scale_factor: float = 1  # vox-256 uses 0.25: keypoints predicted at 64x64 (supp. B.1)
    single_jacobian_map: bool = False  # one Jacobian map shared by all keypoints (mgif)
    pad: int = 0  # padding of the 7x7 heatmap/Jacobian convolutions


class KeypointDetector(nn.Module):
    """Unsupervised keypoint detector.

    ``forward(image (B, C, H, W) in [0, 1]) -> Keypoints`` with ``value (B, K, 2)`` in
    [-1, 1] and, if ``estimate_jacobian``, ``jacobian (B, K, 2, 2)``.
    """

    def __init__(self, config: KeypointDetectorConfig):
        super().__init__()
        self.config = config
        self.predictor = Hourglass(config.block_expansion, config.num_channels, config.num_blocks, config.max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, config.num_kp, kernel_size=7, padding=config.pad)
        if config.estimate_jacobian:
            self.num_jacobian_maps = 1 if config.single_jacobian_map else config.num_kp
            self.jacobian = nn.Conv2d(
                self.predictor.out_filters, 4 * self.num_jacobian_maps, kernel_size=7, padding=config.pad
            )
            # Start from identity Jacobians.
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * self.num_jacobian_maps))
        else:
            self.jacobian = None
        if config.scale_factor != 1:
            self.down = AntiAliasDownsample(config.num_channels, config.scale_factor)

    def forward(self, image: torch.Tensor, return_heatmap: bool = False):
        if self.config.scale_factor != 1:
            image = self.down(image)
        features = self.predictor(image)
        heatmap = spatial_softmax(self.kp(features), self.config.temperature)  # (B, K, h, w)
        value = heatmap_to_keypoints(heatmap)
        jacobian = None
        if self.jacobian is not None:
            b, k, h, w = heatmap.shape
            maps = self.jacobian(features).view(b, self.num_jacobian_maps, 4, h, w)
            jacobian = weighted_average(maps, heatmap).view(b, k, 2, 2)
        kp = Keypoints(value, jacobian)
        return (kp, heatmap) if return_heatmap else kp
