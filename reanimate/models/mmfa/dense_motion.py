"""3-D dense motion network (face-vid2vid Sec. 3.2, used unchanged by MMFA, supp. A.1):
FOMM's dense motion (Sec. 3.2 of FOMM) on the appearance feature volume.

Zeroth order: each keypoint moves its neighbourhood by a translation only (face-vid2vid
has no Jacobians), ``T_k(z) = z - p_D^k + p_S^k``; the background (k = 0) does not move.
The network sees the source volume (compressed to a few channels) warped by each of the
K + 1 motions and the differences of Gaussian heatmaps around the driving and source
keypoints (FOMM Eq. 6, in 3-D), runs a 3-D hourglass and predicts softmax masks that
combine the motions into one backward sampling grid, plus an occlusion map from the
hourglass output with its depth folded into channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...geometry import coordinate_grid, keypoints_to_gaussian
from ...motion import Keypoints, sparse_motion
from ..blocks import ConvBlock, Hourglass


@dataclass
class DenseMotion3DConfig:
    """Defaults: face-vid2vid's vox-256 ``dense_motion_params``."""

    num_kp: int = 15
    feature_channels: int = 32  # C of the input volume
    depth: int = 16  # D of the input volume
    compress: int = 4  # channels the volume is compressed to before warping
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5  # hourglass levels: h and w must be divisible by 2^num_blocks
    kp_variance: float = 0.01  # Gaussian heatmaps (normalised units, FOMM)
    estimate_occlusion_map: bool = True
    mask_kernel_size: int = 7  # the 3-D conv to the K + 1 masks (face-vid2vid: 7x7x7)
    occlusion_kernel_size: int = 7  # the 2-D conv to the occlusion map (face-vid2vid: 7x7)
    align_corners: bool = True  # grid_sample convention; see reanimate.models.config


@dataclass
class DenseMotion3DOutput:
    """deformation: ``(B, D, h, w, 3)`` backward sampling grid into the source volume
    (x, y, z in [-1, 1]); occlusion: ``(B, 1, h, w)`` in [0, 1], or None without
    ``estimate_occlusion_map``; mask: ``(B, K + 1, D, h, w)`` softmax weights, background
    first; sparse_motion: ``(B, K + 1, D, h, w, 3)`` the motions that ``mask`` combines."""

    deformation: torch.Tensor
    occlusion: torch.Tensor | None
    mask: torch.Tensor
    sparse_motion: torch.Tensor | None = None


class DenseMotion3D(nn.Module):
    """``forward(feature (B, C, D, h, w), kp_source (B or 1, K, 3), kp_driving (B, K, 3))
    -> DenseMotion3DOutput``."""

    def __init__(self, config: DenseMotion3DConfig):
        super().__init__()
        self.config = config
        c = config
        self.compress = ConvBlock(c.feature_channels, c.compress, kernel_size=1, padding=0, dims=3)
        self.hourglass = Hourglass(
            c.block_expansion,
            (c.num_kp + 1) * (c.compress + 1),
            c.num_blocks,
            c.max_features,
            dims=3,
            final_block=True,
        )
        k_mask, k_occlusion = c.mask_kernel_size, c.occlusion_kernel_size
        self.mask = nn.Conv3d(self.hourglass.out_filters, c.num_kp + 1, k_mask, padding=k_mask // 2)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters * c.depth, 1, k_occlusion, padding=k_occlusion // 2)
            if c.estimate_occlusion_map
            else None
        )

    def heatmap_representation(self, spatial_size, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """``G(p_D^k) - G(p_S^k)`` with a zero background channel first: ``(B, K + 1, 1, D, h, w)``."""
        var = self.config.kp_variance
        heatmap = keypoints_to_gaussian(kp_driving, spatial_size, var) - keypoints_to_gaussian(
            kp_source, spatial_size, var
        )
        zeros = heatmap.new_zeros(heatmap.shape[0], 1, *spatial_size)
        return torch.cat([zeros, heatmap], dim=1).unsqueeze(2)

    def deform(self, feature: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
        """The volume warped by each motion: ``(B, c, D, h, w)``, ``(B, K + 1, D, h, w, 3)``
        -> ``(B, K + 1, c, D, h, w)``."""
        b, n = motions.shape[:2]
        repeated = feature.unsqueeze(1).expand(b, n, *feature.shape[1:]).reshape(b * n, *feature.shape[1:])
        grid = motions.reshape(b * n, *motions.shape[2:]).to(repeated.dtype)
        warped = F.grid_sample(repeated, grid, align_corners=self.config.align_corners)
        return warped.view(b, n, *feature.shape[1:])

    def forward(self, feature: torch.Tensor, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> DenseMotion3DOutput:
        b, _, d, h, w = feature.shape
        k = self.config.num_kp
        assert kp_driving.shape == (b, k, 3) and kp_source.shape[1:] == (k, 3), (
            f"keypoints {tuple(kp_source.shape)}, {tuple(kp_driving.shape)} vs volume {tuple(feature.shape)}, K = {k}"
        )
        kp_source = kp_source.expand(b, k, 3)
        compressed = self.compress(feature)
        grid = coordinate_grid((d, h, w), dtype=kp_driving.dtype, device=feature.device)
        motions = sparse_motion(grid, Keypoints(kp_source), Keypoints(kp_driving))  # (B, K+1, D, h, w, 3)
        deformed = self.deform(compressed, motions)
        heatmap = self.heatmap_representation((d, h, w), kp_source, kp_driving)
        net_in = torch.cat([heatmap, deformed], dim=2).view(b, -1, d, h, w)
        prediction = self.hourglass(net_in)  # (B, F, D, h, w)
        mask = torch.softmax(self.mask(prediction), dim=1)
        deformation = torch.einsum("bkdhw,bkdhwc->bdhwc", mask, motions)
        occlusion = None
        if self.occlusion is not None:
            occlusion = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return DenseMotion3DOutput(deformation, occlusion, mask, motions)
