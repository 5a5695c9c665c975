"""Expression encoder-decoder (MMFA Sec. 3.2, Eq. 4, supp. A.1):
``delta = D_e(E_e(X), p_C)``.

``E_e``: a conv with ReLU and a max-pool, ResBottleneck blocks down to a ``16 x 4 x 4``
map, and a linear layer to the 256-d expression feature ``f_delta``. ``D_e``: ``f_delta``
concatenated with the flattened canonical keypoints, fully connected layers with
BatchNorm and ReLU, and a last linear layer without activation (deformations can be
negative).

Readings of A.1 (it gives no widths): the stem is face-vid2vid's (7x7 conv stride 2 with
BatchNorm, ReLU, 3x3 max-pool stride 2); each stage widens with a 1x1 conv and starts
with a stride-2 ResBottleneck, so a 256x256 image needs four stages to reach 4x4; a 1x1
conv then brings the channels to 16. The decoder has two hidden layers of 256.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import BottleneckEncoder

#: MMFA supp. A.1: the encoder's last map is 16 x 4 x 4 and f_delta has 256 entries.
MAP_CHANNELS = 16
MAP_SIZE = 4
FEATURE_DIM = 256


@dataclass
class ExpressionEncoderConfig:
    num_channels: int = 3
    stem_features: int = 64
    widths: tuple[int, ...] = (128, 256, 512, 512)  # one stride-2 stage each: 64 -> 4 at 256x256
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    map_channels: int = MAP_CHANNELS
    map_size: int = MAP_SIZE
    feature_dim: int = FEATURE_DIM

    def __post_init__(self):
        self.widths = tuple(self.widths)
        self.blocks = tuple(self.blocks)


class ExpressionEncoder(nn.Module):
    """``E_e``: ``forward(image (B, num_channels, H, W)) -> f_delta (B, feature_dim)``.

    The last map is ``(B, map_channels, H / 2^(2 + s), ...)`` for ``s = len(widths)``
    stages; it is average-pooled to ``map_size`` when larger (a no-op at the design size:
    ``H = map_size * 2^(2 + s)``).
    """

    def __init__(self, config: ExpressionEncoderConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = BottleneckEncoder(c.num_channels, c.stem_features, c.widths, c.blocks, downsample_first=True)
        self.to_map = nn.Conv2d(self.encoder.out_features, c.map_channels, kernel_size=1)
        self.fc = nn.Linear(c.map_channels * c.map_size**2, c.feature_dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.to_map(self.encoder(image))
        if out.shape[-2:] != (self.config.map_size, self.config.map_size):
            out = F.adaptive_avg_pool2d(out, self.config.map_size)
        return self.fc(out.flatten(1))


@dataclass
class ExpressionDecoderConfig:
    num_kp: int = 15
    feature_dim: int = FEATURE_DIM
    hidden_features: tuple[int, ...] = (256, 256)

    def __post_init__(self):
        self.hidden_features = tuple(self.hidden_features)


class ExpressionDecoder(nn.Module):
    """``D_e``: ``forward(f (B, feature_dim), canonical (B, K, 3)) -> delta (B, K, 3)``.

    BatchNorm1d needs more than one sample per batch in training mode.
    """

    def __init__(self, config: ExpressionDecoderConfig):
        super().__init__()
        self.config = config
        layers = []
        previous = config.feature_dim + 3 * config.num_kp
        for width in config.hidden_features:
            layers += [nn.Linear(previous, width), nn.BatchNorm1d(width), nn.ReLU()]
            previous = width
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(previous, 3 * config.num_kp)

    def forward(self, feature: torch.Tensor, canonical: torch.Tensor) -> torch.Tensor:
        b, k, _ = canonical.shape
        assert feature.shape == (b, self.config.feature_dim) and k == self.config.num_kp, (
            f"feature {tuple(feature.shape)} and canonical {tuple(canonical.shape)} do not match the config"
        )
        out = self.out(self.hidden(torch.cat([feature, canonical.flatten(1)], dim=1)))
        return out.view(b, k, 3)
