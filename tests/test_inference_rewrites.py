"""Inference-time rewrites (reanimate.models.inference): batch norms folded into their
convolutions, up blocks computed at their input's resolution, in-place activations
without gradients; outputs unchanged to float rounding."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reanimate.models.blocks import ConvBlock, ResBlock
from reanimate.models.inference import SubpixelUpConv, fold_batch_norms, subpixel_upsampling


def with_statistics(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and batch-norm statistics (a fresh norm is the identity), eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for norm in module.modules():
        if isinstance(norm, nn.modules.batchnorm._BatchNorm):
            norm.running_mean.copy_(torch.randn(norm.num_features, generator=generator))
            norm.running_var.copy_(torch.rand(norm.num_features, generator=generator) + 0.5)
            norm.weight.data.copy_(torch.randn(norm.num_features, generator=generator))
            norm.bias.data.copy_(torch.randn(norm.num_features, generator=generator))
    return module.eval()


@pytest.mark.parametrize("resample", ["none", "down", "up"])
def test_folding_a_conv_block_keeps_its_output(resample):
    block = with_statistics(ConvBlock(4, 6, resample=resample))
    x = torch.randn(2, 4, 8, 10)
    with torch.no_grad():
        expected = block(x)
        assert fold_batch_norms(block) == 1 and block.norm is None
        assert torch.allclose(block(x), expected, atol=1e-5)


def test_folding_a_res_block_takes_only_the_norm_after_a_convolution():
    block = with_statistics(ResBlock(5))
    x = torch.randn(1, 5, 6, 6)
    with torch.no_grad():
        expected = block(x)
        assert fold_batch_norms(block) == 1
        assert isinstance(block.norm1, nn.BatchNorm2d) and isinstance(block.norm2, nn.Identity)
        assert torch.allclose(block(x), expected, atol=1e-5)


def test_folding_refuses_a_model_in_training_and_leaves_spectral_norm():
    block = ConvBlock(3, 4)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(block.train())
    normalised = ConvBlock(3, 4, spectral_norm=True).eval()
    assert fold_batch_norms(normalised) == 0 and normalised.norm is not None


def test_subpixel_convolution_by_hand():
    """Ones 3x3 over [[1, 2], [3, 4]] upsampled to 4x4 (zero padded): each output is the
    sum of the upsampled pixels in its 3x3 window."""
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    conv.weight.data.fill_(1.0)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    out = SubpixelUpConv(conv)(x)
    up = [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    by_hand = [
        [
            sum(up[r][c] for r in range(i - 1, i + 2) for c in range(j - 1, j + 2) if 0 <= r < 4 and 0 <= c < 4)
            for j in range(4)
        ]
        for i in range(4)
    ]
    assert by_hand[0][0] == 4 and by_hand[1][1] == 1 + 1 + 2 + 1 + 1 + 2 + 3 + 3 + 4
    assert out[0, 0].tolist() == by_hand


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 3, 1, 1)])
def test_subpixel_convolution_equals_upsampling_then_convolving(shape):
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = conv(F.interpolate(x, scale_factor=2))
        got = SubpixelUpConv(conv)(x)
        assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5)
        channels_last = SubpixelUpConv(conv).to(memory_format=torch.channels_last)
        assert torch.allclose(channels_last(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-5)


def test_subpixel_refuses_other_convolutions():
    with pytest.raises(ValueError, match="3x3, padding 1"):
        SubpixelUpConv(nn.Conv2d(2, 2, 5, padding=2))
    block = ConvBlock(2, 2, kernel_size=5, padding=2, resample="up").eval()
    assert subpixel_upsampling(block) == 0 and block.resample == "up"


def test_a_prepared_fomm_model_gives_the_same_frames(tiny_model):
    model = copy.deepcopy(tiny_model).eval()
    with_statistics(model, seed=1)
    prepared = copy.deepcopy(model)
    assert fold_batch_norms(prepared) > 0
    assert subpixel_upsampling(prepared.generator.up_blocks) == len(prepared.generator.up_blocks)
    blocks = [
        m for net in (prepared.kp_detector, prepared.generator) for m in net.modules() if isinstance(m, ConvBlock)
    ]
    assert all(b.norm is None for b in blocks)  # the tiny model's blocks all use batch norm
    source, driving = torch.rand(1, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        outputs = []
        for m in (model, prepared):
            kp_source, kp_driving = m.kp_detector(source), m.kp_detector(driving)
            outputs.append(
                (kp_driving.value, m.generator(source.expand(2, -1, -1, -1), kp_driving, kp_source).prediction)
            )
    (kp_a, frames_a), (kp_b, frames_b) = outputs
    assert torch.allclose(kp_a, kp_b, atol=1e-5)
    assert torch.allclose(frames_a, frames_b, atol=1e-5), float((frames_a - frames_b).abs().max())


def test_activations_run_in_place_only_without_gradients():
    block = with_statistics(ResBlock(3))
    x = torch.randn(1, 3, 4, 4)
    kept = x.clone()
    with torch.no_grad():
        plain = block(x)
    assert torch.equal(x, kept)  # the input is never overwritten
    y = x.clone().requires_grad_()
    with_grad = block(y)
    with_grad.sum().backward()  # in-place ops would have broken the graph
    assert torch.allclose(with_grad.detach(), plain) and y.grad is not None
