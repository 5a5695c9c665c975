"""Building blocks shared by every network.

Parameter names (``conv``, ``norm``, ``encoder.down_blocks.N`` …) follow the official
FOMM layout so that its checkpoints load without renaming.

The convolutional blocks take ``dims``: 2 for images ``(B, C, H, W)`` (the default, FOMM)
or 3 for feature volumes ``(B, C, D, H, W)`` (face-vid2vid / MMFA). A 3-D block resamples
only the two spatial axes (H, W) and keeps the depth D, as face-vid2vid's down and up
blocks do.
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


_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE_NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def _check_dims(dims: int) -> None:
    assert dims in (2, 3), f"dims must be 2 (images) or 3 (volumes), got {dims}"


#: a volume's resampling factors along (D, H, W): the depth is kept (face-vid2vid)
_VOLUME_FACTORS = (1, 2, 2)


def _activation(x: torch.Tensor, kind: str = "relu") -> torch.Tensor:
    """ReLU or leaky ReLU (slope 0.2) of a block's fresh intermediate ``x``: in place when
    no gradient is recorded (inference: one tensor less per layer), else a new tensor."""
    inplace = not torch.is_grad_enabled()
    return F.relu(x, inplace=inplace) if kind == "relu" else F.leaky_relu(x, 0.2, inplace=inplace)


class ConvBlock(nn.Module):
    """``[upsample x2] -> conv -> norm -> activation -> [avg-pool /2]``.

    One block parametrised for every use: the hourglass encoder (``resample="down"``)
    and decoder (``"up"``), the generator's same-resolution stem, the
    discriminator (``norm="instance"``, ``activation="leaky_relu"``, ``spectral_norm``),
    and a strided stem (``stride``). ``dims=3`` gives the volume version (see the module
    docstring: resampling acts on H and W only).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | tuple[int, ...] = 3,
        padding: int | tuple[int, ...] = 1,
        resample: str = "none",
        norm: str | None = "batch",
        activation: str = "relu",
        spectral_norm: bool = False,
        groups: int = 1,
        dims: int = 2,
        stride: int = 1,
    ):
        super().__init__()
        assert resample in ("none", "down", "up"), resample
        _check_dims(dims)
        self.conv = _CONV[dims](in_features, out_features, kernel_size, padding=padding, groups=groups, stride=stride)
        if spectral_norm:
            # torch.nn.utils.spectral_norm keeps the reference checkpoints' key names
            # (weight_orig, weight_u, weight_v).
            self.conv = nn.utils.spectral_norm(self.conv)
        if norm == "batch":
            self.norm = _BATCH_NORM[dims](out_features, affine=True)
        elif norm == "instance":
            self.norm = _INSTANCE_NORM[dims](out_features, affine=True)
        else:
            assert norm is None, norm
            self.norm = None
        self.resample = resample
        self.activation = activation
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            x = F.interpolate(x, scale_factor=2 if self.dims == 2 else _VOLUME_FACTORS)
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        x = _activation(x, self.activation)
        if self.resample == "down":
            x = F.avg_pool2d(x, (2, 2)) if self.dims == 2 else F.avg_pool3d(x, _VOLUME_FACTORS)
        return x


class ResBlock(nn.Module):
    """Pre-activation residual block at constant resolution: ``x + conv(relu(bn(conv(relu(bn(x))))))``
    (``dims=3``: on volumes)."""

    def __init__(
        self,
        features: int,
        kernel_size: int | tuple[int, ...] = 3,
        padding: int | tuple[int, ...] = 1,
        dims: int = 2,
    ):
        super().__init__()
        _check_dims(dims)
        self.conv1 = _CONV[dims](features, features, kernel_size, padding=padding)
        self.conv2 = _CONV[dims](features, features, kernel_size, padding=padding)
        self.norm1 = _BATCH_NORM[dims](features, affine=True)
        self.norm2 = _BATCH_NORM[dims](features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(_activation(self.norm1(x)))
        out = self.conv2(_activation(self.norm2(out)))
        return out + x if torch.is_grad_enabled() else out.add_(x)


class ResBottleneck(nn.Module):
    """Post-activation bottleneck residual block (ResNet; the ``ResBottleneck`` of
    face-vid2vid's head-pose estimator and MMFA's expression encoder, supp. A.1).

    ``relu(bn(conv1x1(h)) + skip(x))`` with ``h = relu(bn(conv3x3_stride(relu(bn(conv1x1(x))))))``
    of ``features // 4`` channels; ``skip`` is the identity, or a strided 1x1 conv + bn when
    ``stride`` > 1. ``(B, F, H, W) -> (B, F, H / stride, W / stride)``.
    """

    def __init__(self, features: int, stride: int = 1):
        super().__init__()
        inner = max(1, features // 4)
        self.conv1 = nn.Conv2d(features, inner, kernel_size=1)
        self.conv2 = nn.Conv2d(inner, inner, kernel_size=3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(inner, features, kernel_size=1)
        self.norm1 = nn.BatchNorm2d(inner, affine=True)
        self.norm2 = nn.BatchNorm2d(inner, affine=True)
        self.norm3 = nn.BatchNorm2d(features, affine=True)
        if stride != 1:
            self.skip = nn.Conv2d(features, features, kernel_size=1, stride=stride)
            self.norm4 = nn.BatchNorm2d(features, affine=True)
        else:
            self.skip = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.skip is not None:
            x = self.norm4(self.skip(x))
        return F.relu(out + x)


class BottleneckEncoder(nn.Module):
    """ResNet-style image encoder: a stem (7x7 conv stride 2, bn, relu, 3x3 max-pool
    stride 2), then one stage per entry of ``widths``: a 1x1 conv-bn-relu to the
    stage's width and ``blocks[i]`` :class:`ResBottleneck` blocks, the first of which
    halves the resolution (except in the first stage unless ``downsample_first``).

    face-vid2vid's head-pose estimator is ``widths=(256, 512, 1024, 2048)``,
    ``blocks=(3, 4, 6, 3)`` with ``downsample_first=False``.

    ``(B, in_features, H, W) -> (B, widths[-1], H / 2^(2 + s), W / 2^(2 + s))`` with ``s``
    the number of downsampling stages.
    """

    def __init__(
        self,
        in_features: int,
        stem_features: int,
        widths: Sequence[int],
        blocks: Sequence[int],
        downsample_first: bool = False,
    ):
        super().__init__()
        assert len(widths) == len(blocks) and len(widths) > 0, f"widths {widths} and blocks {blocks} must pair up"
        assert all(n >= 1 for n in blocks), f"every stage needs a block, got {blocks}"
        self.stem = ConvBlock(in_features, stem_features, kernel_size=7, padding=3, stride=2)
        stages = []
        previous = stem_features
        for i, (width, n) in enumerate(zip(widths, blocks)):
            stride = 2 if (i > 0 or downsample_first) else 1
            stage = nn.Sequential(ConvBlock(previous, width, kernel_size=1, padding=0))
            for j in range(n):
                stage.append(ResBottleneck(width, stride if j == 0 else 1))
            stages.append(stage)
            previous = width
        self.stages = nn.ModuleList(stages)
        self.out_features = previous
        self.num_downsampling = 2 + sum(1 for i in range(len(widths)) if i > 0 or downsample_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.max_pool2d(self.stem(x), kernel_size=3, stride=2, padding=1)
        for stage in self.stages:
            out = stage(out)
        return out


def feature_width(block_expansion: int, level: int, max_features: int) -> int:
    """Channels at depth ``level`` of an encoder that doubles its width per level, capped."""
    return min(max_features, block_expansion * 2**level)


class HourglassEncoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int, dims: int = 2):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            ConvBlock(
                in_features if i == 0 else feature_width(block_expansion, i, max_features),
                feature_width(block_expansion, i + 1, max_features),
                resample="down",
                dims=dims,
            )
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int,
        max_features: int,
        dims: int = 2,
        final_block: bool = False,
    ):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            skip = 1 if i == num_blocks - 1 else 2  # every level but the deepest gets a skip concat
            blocks.append(
                ConvBlock(
                    skip * feature_width(block_expansion, i + 1, max_features),
                    feature_width(block_expansion, i, max_features),
                    resample="up",
                    dims=dims,
                )
            )
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        # face-vid2vid's 3-D hourglass ends with a conv-bn-relu on the concatenated output.
        self.final = ConvBlock(self.out_filters, self.out_filters, dims=dims) if final_block else None

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        features = list(features)
        out = features.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), features.pop()], dim=1)
        return self.final(out) if self.final is not None else out


class Hourglass(nn.Module):
    """U-Net (FOMM supp. B.1): ``num_blocks`` conv3x3-bn-relu-avgpool blocks down,
    the same up with skip connections.

    Input ``(B, in_features, H, W)`` with H, W divisible by ``2**num_blocks``;
    output ``(B, block_expansion + in_features, H, W)``. ``dims=3``: volumes ``(B, C, D,
    H, W)``, the depth D kept at every level (face-vid2vid's dense motion network);
    ``final_block`` adds a conv-bn-relu after the last concatenation (face-vid2vid).
    """

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int = 3,
        max_features: int = 256,
        dims: int = 2,
        final_block: bool = False,
    ):
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features, dims)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features, dims, final_block)
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
