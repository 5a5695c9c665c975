"""Multi-scale generator (MMFA Sec. 3.2, Fig. 2c, supp. A.1): decodes the warped source
volume into images at three resolutions, ``{G_64, G_128, G}`` at 256x256 (Eq. 6).

Supp. A.1: the warped ``32 x 16 x 64 x 64`` volume is reshaped to 2-D and a conv brings
it to ``256 x 64 x 64``; then, three times: a ResBlock, a conv to an output image at that
resolution, the concatenation of features and image, and an UpBlock (upsampling and a
conv, fewer channels).

Readings of the ambiguous points:

- Three up blocks would end at 512x512, yet the outputs are 64, 128 and 256: the last
  round stops after its image (no up block follows the full-size output), so there are
  ``num_scales`` images and ``num_scales - 1`` up blocks, at ``h, 2h, 4h`` for a volume
  ``h`` wide.
- "a convolutional layer" from the volume to 256 channels is face-vid2vid's pair (a 3x3
  conv-BatchNorm-LeakyReLU and a 1x1 conv), which the occlusion map then multiplies, as
  in face-vid2vid (MMFA keeps its dense motion and occlusion).
- Each round has ``res_blocks_per_scale`` ResBlocks (default 1, "a ResBlock"); each up
  block halves the channels (256 -> 128 -> 64); the output convs are 7x7 (face-vid2vid's
  final conv) with a sigmoid, and the images are concatenated as they come out of it.

An option that is not in the paper, off in ``mmfa/vox-256``: **2-D skips**
(``skip_features > 0``, as FOMM's U-Net generator option). A small 2-D encoder of the
source image (a 7x7 conv at full size, then a down block per scale, ``skip_features``
channels doubling per level) gives features at every output resolution; the dense
motion's grid, its x, y averaged over depth, warps them, the occlusion map multiplies
them, and a conv fuses them into the round at that resolution before its ResBlock. The
volume alone carries the source's texture at a quarter of the image's size; on a short
CPU run (``mmfa/heads-64``) the outputs stayed blurred without the skips.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import ConvBlock, ResBlock


@dataclass
class MultiScaleGeneratorConfig:
    num_channels: int = 3  # image channels
    feature_channels: int = 32  # C of the input volume
    depth: int = 16  # D of the input volume
    features: int = 256  # channels of the 2-D map at the volume's resolution (halved per up block)
    num_scales: int = 3  # output images at h, 2h, ..., 2^(n-1) h
    res_blocks_per_scale: int = 1
    output_kernel_size: int = 7
    align_corners: bool = True  # grid_sample convention; see reanimate.models.config
    skip_features: int = 0  # > 0: the 2-D skips (module docstring), this many channels at full size


@dataclass
class GeneratorOutputs:
    """images: ``{size: (B, num_channels, size, size * W / H)}`` in [0, 1], keyed by the
    output height, smallest first; deformed: ``(B, C, D, h, w)`` the warped volume (only
    when asked for)."""

    images: dict[int, torch.Tensor]
    deformed: torch.Tensor | None = None

    @property
    def prediction(self) -> torch.Tensor:
        """The full-size image (the largest output)."""
        return self.images[max(self.images)]


class MultiScaleGenerator(nn.Module):
    """``forward(feature (B, C, D, h, w), deformation (B, D', h', w', 3), occlusion (B, 1,
    h'', w'') or None, skips) -> GeneratorOutputs``; a deformation or occlusion map at
    another resolution is resized (trilinear / bilinear) to the volume's (and to each
    skip's). ``skips`` is :meth:`encode_source` of the source image (``(1|B, 3, H, W)``),
    required when ``skip_features > 0``."""

    def __init__(self, config: MultiScaleGeneratorConfig):
        super().__init__()
        self.config = config
        c = config
        assert c.num_scales >= 1, f"num_scales must be >= 1, got {c.num_scales}"
        assert c.features % 2 ** (c.num_scales - 1) == 0, (
            f"features {c.features} must be divisible by 2^(num_scales - 1) = {2 ** (c.num_scales - 1)}"
        )
        self.third = ConvBlock(c.feature_channels * c.depth, c.features, activation="leaky_relu")
        self.fourth = nn.Conv2d(c.features, c.features, kernel_size=1)
        widths = [c.features // 2**i for i in range(c.num_scales)]
        self.res_blocks = nn.ModuleList(
            nn.Sequential(*(ResBlock(width) for _ in range(c.res_blocks_per_scale))) for width in widths
        )
        k = c.output_kernel_size
        self.to_image = nn.ModuleList(nn.Conv2d(width, c.num_channels, k, padding=k // 2) for width in widths)
        self.up_blocks = nn.ModuleList(
            ConvBlock(widths[i] + c.num_channels, widths[i + 1], resample="up") for i in range(c.num_scales - 1)
        )
        self.skip_encoder = self.skip_fusion = None
        if c.skip_features > 0:
            # level j is at H / 2^j with skip_features * 2^j channels; round i uses level n-1-i
            skip_widths = [c.skip_features * 2**j for j in range(c.num_scales)]
            self.skip_encoder = nn.ModuleList(
                [ConvBlock(c.num_channels, skip_widths[0], kernel_size=7, padding=3)]
                + [ConvBlock(skip_widths[j - 1], skip_widths[j], resample="down") for j in range(1, c.num_scales)]
            )
            self.skip_fusion = nn.ModuleList(
                ConvBlock(width + skip_widths[c.num_scales - 1 - i], width) for i, width in enumerate(widths)
            )

    def encode_source(self, image: torch.Tensor) -> list[torch.Tensor] | None:
        """The 2-D skips of a source image ``(B, 3, H, W)``: ``[(B, s, H, W), (B, 2s, H/2,
        W/2), ...]``, one per output scale, full size first; None without skips."""
        if self.skip_encoder is None:
            return None
        skips, out = [], image
        for block in self.skip_encoder:
            out = block(out)
            skips.append(out)
        return skips

    def _warped_skip(
        self, skip: torch.Tensor, flow: torch.Tensor, occlusion: torch.Tensor | None, batch: int
    ) -> torch.Tensor:
        """A skip ``(1|B, c, s, s')`` sampled at the depth-averaged grid ``flow (B, 2, h,
        w)`` resized to it, times the occlusion map."""
        size = skip.shape[2:]
        grid = F.interpolate(flow, size=size, mode="bilinear", align_corners=True).permute(0, 2, 3, 1)
        skip = skip.expand(batch, *skip.shape[1:]) if skip.shape[0] != batch else skip
        warped = F.grid_sample(skip, grid.to(skip.dtype), align_corners=self.config.align_corners)
        if occlusion is not None:
            warped = warped * F.interpolate(occlusion, size=size, mode="bilinear", align_corners=True)
        return warped

    def warp(self, feature: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        """``feature (B, C, D, h, w)`` sampled at ``deformation (B, D', h', w', 3)``, resized
        to ``(D, h, w)`` first if needed."""
        if deformation.shape[1:4] != feature.shape[2:]:
            deformation = F.interpolate(
                deformation.permute(0, 4, 1, 2, 3), size=feature.shape[2:], mode="trilinear", align_corners=True
            ).permute(0, 2, 3, 4, 1)
        if feature.shape[0] != deformation.shape[0]:
            feature = feature.expand(deformation.shape[0], *feature.shape[1:])
        return F.grid_sample(feature, deformation.to(feature.dtype), align_corners=self.config.align_corners)

    def forward(
        self,
        feature: torch.Tensor,
        deformation: torch.Tensor,
        occlusion: torch.Tensor | None = None,
        skips: list[torch.Tensor] | None = None,
        return_deformed: bool = False,
    ) -> GeneratorOutputs:
        if (skips is None) != (self.skip_encoder is None):
            raise ValueError(
                "this generator has 2-D skips: pass skips=encode_source(source)"
                if skips is None
                else "this generator has no 2-D skips (skip_features is 0)"
            )
        deformed = self.warp(feature, deformation)
        b, c, d, h, w = deformed.shape
        out = self.fourth(self.third(deformed.reshape(b, c * d, h, w)))
        volume_occlusion = occlusion
        if occlusion is not None and occlusion.shape[2:] != out.shape[2:]:
            volume_occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear", align_corners=True)
        if volume_occlusion is not None:
            out = out * volume_occlusion
        flow = None if skips is None else deformation[..., :2].mean(dim=1).permute(0, 3, 1, 2)
        images = {}
        for i, (res_blocks, to_image) in enumerate(zip(self.res_blocks, self.to_image)):
            if skips is not None:
                skip = self._warped_skip(skips[len(skips) - 1 - i], flow, occlusion, b)
                out = self.skip_fusion[i](torch.cat([out, skip.to(out.dtype)], dim=1))
            out = res_blocks(out)
            image = torch.sigmoid(to_image(out))
            images[image.shape[2]] = image
            if i < len(self.up_blocks):
                out = self.up_blocks[i](torch.cat([out, image], dim=1))
        return GeneratorOutputs(images, deformed if return_deformed else None)
