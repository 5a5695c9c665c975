"""Inference-time rewrites of a trained network's blocks that keep its outputs (to float
rounding) and cost less time and memory per frame: what an animator does to the model it
owns once, never to a model being trained.

* :func:`fold_batch_norms`: a batch norm (eval mode: a fixed per-channel affine map)
  right after a convolution is folded into the convolution's weights and bias, so its
  output tensor is never made (:class:`~reanimate.models.blocks.ConvBlock`'s
  conv -> norm, and a :class:`~reanimate.models.blocks.ResBlock`'s ``norm2`` after its
  ``conv1``).
* :func:`subpixel_upsampling`: nearest 2x upsampling followed by a 3x3 convolution (the
  up blocks of FOMM's generator and hourglass decoders) is computed as four 2x2
  convolutions at the input's resolution, one per position in each 2x2 output block,
  written into the output's interleaved rows and columns: the upsampled input, four
  times the input's size, is never made, and it takes 16 products per input pixel and
  channel pair instead of 36 (about twice as fast). The weights grow by 16/9, so this
  pays for up blocks at high resolution with few channels (FOMM's generator), not for
  an hourglass's low-resolution, wide ones: the caller chooses the modules.

The blocks' activations run in place when no gradient is recorded (see
``blocks._activation``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBlock, ResBlock


def _fold(conv: nn.Conv2d | nn.Conv3d, norm: nn.modules.batchnorm._BatchNorm) -> None:
    """In place: ``conv``'s weight and bias become those of ``norm(conv(x))`` (norm in
    eval mode: ``(y - mean) / sqrt(var + eps) * gamma + beta``)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # (C_out,)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    with torch.no_grad():
        conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
        folded = (bias - norm.running_mean) * scale + norm.bias
        if conv.bias is None:
            conv.bias = nn.Parameter(folded, requires_grad=conv.weight.requires_grad)
        else:
            conv.bias.copy_(folded)


def _plain_conv(conv: nn.Module) -> bool:
    """A convolution whose weights may be rewritten (not spectral-normalised: its weight
    is recomputed from ``weight_orig`` on every call)."""
    return isinstance(conv, (nn.Conv2d, nn.Conv3d)) and not hasattr(conv, "weight_orig")


def fold_batch_norms(model: nn.Module) -> int:
    """Fold every batch norm that directly follows a convolution into it (in place);
    returns how many. ``model`` must be in eval mode (the running statistics are what is
    folded)."""
    if model.training:
        raise ValueError("fold_batch_norms needs a model in eval mode")
    folded = 0
    for module in model.modules():
        if isinstance(module, ConvBlock) and isinstance(module.norm, nn.modules.batchnorm._BatchNorm):
            if _plain_conv(module.conv):
                _fold(module.conv, module.norm)
                module.norm = None
                folded += 1
        elif isinstance(module, ResBlock) and isinstance(module.norm2, nn.modules.batchnorm._BatchNorm):
            if _plain_conv(module.conv1):
                _fold(module.conv1, module.norm2)
                module.norm2 = nn.Identity()
                folded += 1
    return folded


def _phases_fit(conv: nn.Module) -> bool:
    """Whether :class:`SubpixelUpConv` can take ``conv``'s place: a plain 2-D 3x3
    convolution, padding 1 (zeros), stride 1, undilated, ungrouped."""
    return (
        _plain_conv(conv)
        and isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (3, 3)
        and conv.padding == (1, 1)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


class SubpixelUpConv(nn.Module):
    """``conv(upsample_nearest_2x(x))`` for a 3x3, padding 1, stride 1 2-D ``conv``,
    computed at ``x``'s resolution: ``(B, C_in, H, W) -> (B, C_out, 2H, 2W)``.

    Output row ``2i + a`` reads upsampled rows ``2i + a - 1 .. 2i + a + 1``, that is two
    input rows: ``i - 1`` (the kernel's top row) and ``i`` (its other two) for ``a = 0``;
    ``i`` (its top two rows) and ``i + 1`` (its bottom row) for ``a = 1``; the same along
    columns. So each of the four phases ``(a, b)`` of the output is a 2x2 convolution of
    ``x`` padded by one pixel (zero padding maps to zero padding) with sums of the
    kernel's rows and columns, read from offset ``(a, b)``: 16 products per input pixel
    and output channel where upsampling first costs 36, and no upsampled tensor.
    """

    #: per phase a: the kernel's rows (or columns) each of the two taps sums
    _TAPS = (((0,), (1, 2)), ((0, 1), (2,)))

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if not _phases_fit(conv):
            raise ValueError(
                f"SubpixelUpConv needs a 3x3, padding 1, stride 1, undilated, zero-padded convolution, got {conv}"
            )
        weight = conv.weight.detach()  # (C_out, C_in, 3, 3)
        phases = []
        for a in range(2):
            for b in range(2):
                kernel = weight.new_zeros(*weight.shape[:2], 2, 2)
                for r, rows in enumerate(self._TAPS[a]):
                    for c, cols in enumerate(self._TAPS[b]):
                        kernel[:, :, r, c] = weight[:, :, list(rows)][:, :, :, list(cols)].sum((2, 3))
                phases.append(kernel)
        #: ``(4 C_out, C_in, 2, 2)``: phase ``a * 2 + b``'s kernels are rows ``p C_out .. (p + 1) C_out``
        self.weight = nn.Parameter(torch.cat(phases), requires_grad=False)
        bias = conv.bias.detach() if conv.bias is not None else weight.new_zeros(weight.shape[0])
        self.bias = nn.Parameter(bias.clone(), requires_grad=False)
        self.out_channels = weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, h, w = x.shape
        c = self.out_channels
        padded = F.pad(x, (1, 1, 1, 1))
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        out = None
        for phase in range(4):
            a, b = divmod(phase, 2)
            part = F.conv2d(padded, self.weight[phase * c : (phase + 1) * c], self.bias)  # (B, C, H + 1, W + 1)
            if out is None:  # (the convolution's type: autocast may have chosen a lower one)
                out = torch.empty(batch, c, 2 * h, 2 * w, dtype=part.dtype, device=part.device, memory_format=layout)
            out[:, :, a::2, b::2] = part[:, :, a : a + h, b : b + w]
        return out


def subpixel_upsampling(model: nn.Module) -> int:
    """Replace every 2-D up block's upsample + 3x3 convolution by a
    :class:`SubpixelUpConv` (in place); returns how many."""
    replaced = 0
    for module in model.modules():
        if isinstance(module, ConvBlock) and module.resample == "up" and module.dims == 2:
            if _phases_fit(module.conv):
                module.conv = SubpixelUpConv(module.conv)
                module.resample = "none"
                replaced += 1
    return replaced


__all__ = ["SubpixelUpConv", "fold_batch_norms", "subpixel_upsampling"]
