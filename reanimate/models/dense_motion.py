"""Dense motion network (FOMM Sec. 3.2): from the sparse local affine motions to one
dense backward flow and an occlusion map.

The background component (k = 0) is the identity motion (FOMM), or, given a global
``background`` affine map (:mod:`reanimate.models.background`, MRAA Sec. 3.3), that map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import coordinate_grid, keypoints_to_gaussian
from ..motion import Keypoints, sparse_motion
from .background import affine_motion
from .blocks import AntiAliasDownsample, Hourglass


@dataclass
class DenseMotionConfig:
    """``generator_params.dense_motion_params`` plus the keys it inherits; optional keys
    default as in the reference constructor."""

    num_kp: int = 10
    num_channels: int = 3
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 1  # vox-256 uses 0.25 (supp. B.1)
    kp_variance: float = 0.01  # variance of the Gaussian heatmaps (normalised units)
    estimate_occlusion_map: bool = False
    align_corners: bool = True  # grid_sample convention; see reanimate.models.config


@dataclass
class DenseMotionOutput:
    """Shapes at the network's resolution ``(h, w) = scale_factor * (H, W)``.

    deformation: ``(B, h, w, 2)`` backward flow (sampling grid into the source).
    mask: ``(B, K + 1, h, w)`` the soft masks ``M^k``: softmax weights of the background
    (k = 0) and the K local motions, summing to 1 at every pixel.
    occlusion_map: ``(B, 1, h, w)`` in [0, 1] or None.
    sparse_deformed: ``(B, K + 1, C, h, w)`` the source warped by each local motion.
    sparse_motion: ``(B, K + 1, h, w, 2)`` the K + 1 backward motions themselves
    (background first) that ``mask`` combines into ``deformation``.
    """

    deformation: torch.Tensor
    mask: torch.Tensor
    occlusion_map: torch.Tensor | None
    sparse_deformed: torch.Tensor
    sparse_motion: torch.Tensor | None = None


class DenseMotion(nn.Module):
    """``forward(source (B, C, H, W), kp_driving, kp_source, background=None) -> DenseMotionOutput``.

    ``source`` may be given already downsampled with :meth:`downsample` (the pipelines
    cache it); ``kp_source`` may have batch size 1 and is broadcast. ``background``:
    ``(B, 2, 3)`` affine maps from driving to source coordinates that replace the
    identity motion of the background component (MRAA); None keeps the identity.
    """

    def __init__(self, config: DenseMotionConfig):
        super().__init__()
        self.config = config
        k, c = config.num_kp, config.num_channels
        self.hourglass = Hourglass(config.block_expansion, (k + 1) * (c + 1), config.num_blocks, config.max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, k + 1, kernel_size=7, padding=3)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
            if config.estimate_occlusion_map
            else None
        )
        if config.scale_factor != 1:
            self.down = AntiAliasDownsample(c, config.scale_factor)

    def downsample(self, source: torch.Tensor) -> torch.Tensor:
        return self.down(source) if self.config.scale_factor != 1 else source

    def heatmap_representation(self, spatial_size, kp_driving: Keypoints, kp_source: Keypoints) -> torch.Tensor:
        """FOMM Eq. (6): ``H_k = G(kp_driving_k) - G(kp_source_k)``, background channel 0.

        Returns ``(B, K + 1, 1, h, w)``.
        """
        var = self.config.kp_variance
        heatmap = keypoints_to_gaussian(kp_driving.value, spatial_size, var) - keypoints_to_gaussian(
            kp_source.value, spatial_size, var
        )
        zeros = heatmap.new_zeros(heatmap.shape[0], 1, *spatial_size)
        return torch.cat([zeros, heatmap], dim=1).unsqueeze(2)

    def deform_source(self, source: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
        """Warp the source by each of the K + 1 motions.

        Args: source ``(1 or B, C, h, w)``, motions ``(B, K + 1, h, w, 2)``.
        Returns ``(B, K + 1, C, h, w)``.
        """
        b, n, h, w, _ = motions.shape
        repeated = source.unsqueeze(1).expand(b, n, *source.shape[1:]).reshape(b * n, *source.shape[1:])
        grid = motions.reshape(b * n, h, w, 2).to(repeated.dtype)  # equal dtypes under autocast
        warped = F.grid_sample(repeated, grid, align_corners=self.config.align_corners)
        return warped.view(b, n, -1, h, w)

    def forward(
        self,
        source: torch.Tensor,
        kp_driving: Keypoints,
        kp_source: Keypoints,
        downsampled: bool = False,
        background: torch.Tensor | None = None,
    ):
        if not downsampled:
            source = self.downsample(source)
        b = kp_driving.batch_size
        h, w = source.shape[2:]
        grid = coordinate_grid((h, w), dtype=kp_driving.value.dtype, device=source.device)
        heatmap = self.heatmap_representation((h, w), kp_driving, kp_source.expand(b))
        motions = sparse_motion(grid, kp_source, kp_driving)  # (B, K+1, h, w, 2)
        if background is not None:
            if background.shape != (b, 2, 3):
                raise ValueError(f"background must be ({b}, 2, 3) affine maps, got {tuple(background.shape)}")
            motions = torch.cat([affine_motion(grid, background).unsqueeze(1), motions[:, 1:]], dim=1)
        deformed = self.deform_source(source, motions)
        net_in = torch.cat([heatmap, deformed], dim=2).view(b, -1, h, w)
        features = self.hourglass(net_in)
        mask = torch.softmax(self.mask(features), dim=1)
        deformation = torch.einsum("bkhw,bkhwc->bhwc", mask, motions)
        occlusion = torch.sigmoid(self.occlusion(features)) if self.occlusion is not None else None
        return DenseMotionOutput(deformation, mask, occlusion, deformed, motions)
