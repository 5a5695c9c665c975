"""Building blocks shared by every network.

Parameter names (``conv``, ``norm``, ``encoder.down_blocks.N`` …) follow the official
FOMM layout so that its checkpoints load without renaming.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class MeasuringNetwork(nn.Module):
    """A fixed network used as a measuring instrument (VGG features of the perceptual
    loss, LPIPS, FID's Inception): always in eval mode, no parameter gradients (inputs
    still get them). Subclasses build their layers, define ``reset_parameters(seed)``
    and call :meth:`freeze` at the end of ``__init__``."""

    def freeze(self, seed: int | None) -> None:
        """Seeded random weights (``seed`` None: keep them), then fix the network."""
        if seed is not None:
            self.reset_parameters(seed)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True):
        """Always eval: ``mode`` is ignored."""
        return super().train(False)


class ConvBlock(nn.Module):
    """``[upsample x2] -> conv -> norm -> activation -> [avg-pool /2]``.

    One block parametrised for every use: the hourglass encoder (``resample="down"``)
    and decoder (``"up"``), the generator's same-resolution stem, and the
    discriminator (``norm="instance"``, ``activation="leaky_relu"``, ``spectral_norm``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | tuple[int, int] = 3,
        padding: int | tuple[int, int] = 1,
        resample: str = "none",
        norm: str | None = "batch",
        activation: str = "relu",
        spectral_norm: bool = False,
        groups: int = 1,
    ):
        super().__init__()
        assert resample in ("none", "down", "up"), resample
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding, groups=groups)
        if spectral_norm:
            # torch.nn.utils.spectral_norm keeps the reference checkpoints' key names
            # (weight_orig, weight_u, weight_v).
            self.conv = nn.utils.spectral_norm(self.conv)
        if norm == "batch":
            self.norm = nn.BatchNorm2d(out_features, affine=True)
        elif norm == "instance":
            self.norm = nn.InstanceNorm2d(out_features, affine=True)
        else:
            assert norm is None, norm
            self.norm = None
        self.resample = resample
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            x = F.interpolate(x, scale_factor=2)
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        x = F.relu(x) if self.activation == "relu" else F.leaky_relu(x, 0.2)
        if self.resample == "down":
            x = F.avg_pool2d(x, (2, 2))
        return x


class ResBlock(nn.Module):
    """Pre-activation residual block at constant resolution: ``x + conv(relu(bn(conv(relu(bn(x))))))``."""

    def __init__(self, features: int, kernel_size: int | tuple[int, int] = 3, padding: int | tuple[int, int] = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(features, affine=True)
        self.norm2 = nn.BatchNorm2d(features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def feature_width(block_expansion: int, level: int, max_features: int) -> int:
    """Channels at depth ``level`` of an encoder that doubles its width per level, capped."""
    return min(max_features, block_expansion * 2**level)


class HourglassEncoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            ConvBlock(
                in_features if i == 0 else feature_width(block_expansion, i, max_features),
                feature_width(block_expansion, i + 1, max_features),
                resample="down",
            )
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            skip = 1 if i == num_blocks - 1 else 2  # every level but the deepest gets a skip concat
            blocks.append(
                ConvBlock(
                    skip * feature_width(block_expansion, i + 1, max_features),
                    feature_width(block_expansion, i, max_features),
                    resample="up",
                )
            )
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        features = list(features)
        out = features.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), features.pop()], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net (FOMM supp. B.1): ``num_blocks`` conv3x3-bn-relu-avgpool blocks down,
    the same up with skip connections.

    Input ``(B, in_features, H, W)`` with H, W divisible by ``2**num_blocks``;
    output ``(B, block_expansion + in_features, H, W)``.
    """

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def gaussian_kernel(scale: float) -> torch.Tensor:
    """The anti-aliasing Gaussian used before downsampling by ``scale`` (< 1).

    sigma = (1/scale - 1) / 2 and a ``2 round(4 sigma) + 1`` support, normalised to
    sum 1, as in the reference implementation.

    Returns: ``(k, k)``.
    """
    sigma = (1 / scale - 1) / 2
    size = 2 * round(sigma * 4) + 1
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = g[:, None] * g[None, :]
    return kernel / kernel.sum()


class AntiAliasDownsample(nn.Module):
    """Gaussian blur then subsample by ``1 / scale`` (band-limited resizing).

    ``(B, C, H, W) -> (B, C, ceil(H * scale), ceil(W * scale))``; identity for scale 1.
    The kernel is a buffer named ``weight`` (it is part of the reference checkpoints).
    """

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.scale = scale
        self.groups = channels
        if scale == 1:
            return
        kernel = gaussian_kernel(scale)
        self.register_buffer("weight", kernel.expand(channels, 1, *kernel.shape).contiguous())
        size = kernel.shape[0]
        self.pad_before = size // 2
        self.pad_after = self.pad_before - 1 if size % 2 == 0 else self.pad_before
        self.stride = int(1 / scale)
        assert math.isclose(1 / scale, self.stride), f"scale must be 1/integer, got {scale}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return x
        x = F.pad(x, (self.pad_before, self.pad_after, self.pad_before, self.pad_after))
        # A strided convolution equals the full convolution followed by [::stride].
        return F.conv2d(x, self.weight.to(x.dtype), groups=self.groups, stride=self.stride)


def scale_key(scale: float) -> str:
    """Module-dict key of a scale, as in the reference checkpoints (``0.5`` -> ``"0-5"``)."""
    return str(scale).replace(".", "-")


class ImagePyramid(nn.Module):
    """Band-limited image pyramid for the multi-scale perceptual loss (FOMM Sec. 3.3)
    and the multi-scale discriminator.

    ``forward(x (B, C, H, W)) -> {scale: (B, C, ceil(H * scale), ceil(W * scale))}`` for
    every scale given (``1/integer``); scale 1 is ``x`` itself.
    """

    def __init__(self, scales: Sequence[float], num_channels: int):
        super().__init__()
        self.scales = list(scales)
        self.downs = nn.ModuleDict({scale_key(s): AntiAliasDownsample(num_channels, s) for s in self.scales})

    def forward(self, x: torch.Tensor) -> dict[float, torch.Tensor]:
        return {s: self.downs[scale_key(s)](x) for s in self.scales}
