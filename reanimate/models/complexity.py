"""Model size and cost: multiply-accumulates (MACs) of a forward pass, counted by hooks.

Convolutions (2-D and 3-D) and linear layers are counted from their outputs; the motion transformer's
attention adds its two ``T x T`` products. Normalisation, activations, additions and
``grid_sample`` are not counted (what common counters such as thop report as "FLOPs").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .blocks import ImagePyramid
from .motion_transformer import Attention


def count_macs(module: nn.Module, *inputs: torch.Tensor, run: Callable[[], Any] | None = None) -> dict[str, int]:
    """MACs of ``module``'s layers during ``module(*inputs)`` (or during ``run()``, when
    the module is one part of a bigger forward pass): ``{"conv", "linear", "attention",
    "total"}``."""
    macs = {"conv": 0, "linear": 0, "attention": 0}

    def conv_hook(m, args, out):
        macs["conv"] += out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)

    def linear_hook(m, args, out):
        macs["linear"] += out.numel() * m.in_features

    def attention_hook(m, args, out):
        b, t, d = args[0].shape
        macs["attention"] += 2 * b * t * t * d

    hooks = {nn.Conv2d: conv_hook, nn.Conv3d: conv_hook, nn.Linear: linear_hook, Attention: attention_hook}
    handles = [
        m.register_forward_hook(hook) for m in module.modules() for kind, hook in hooks.items() if isinstance(m, kind)
    ]
    try:
        with torch.no_grad():
            run() if run is not None else module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    macs["total"] = sum(macs.values())
    return macs


def model_report(config) -> list[tuple[str, int, int]]:
    """``(module, trainable parameters, MACs)`` of a config's networks for one sample at
    the config's resolution: the motion estimator, the generator (with its dense motion
    network, also listed alone) and the discriminator (on the generated frame)."""
    from .fomm import build_model, count_parameters

    model = build_model(config, with_discriminator=True, seed=0).eval()
    h, w = config.image_size
    image = torch.rand(1, config.kp_detector.num_channels, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        kp = model.kp_detector(image)
    rows = [("kp_detector", model.kp_detector, lambda: model.kp_detector(image))]

    def generate():
        return model.generator(image, kp_driving=kp, kp_source=kp, driving=image)

    rows.append(("generator", model.generator, generate))
    if model.generator.dense_motion_network is not None:
        rows.append(("  dense_motion", model.generator.dense_motion_network, generate))
    if model.discriminator is not None:
        pyramid = ImagePyramid(model.discriminator.config.scales, config.kp_detector.num_channels)
        rows.append(("discriminator", model.discriminator, lambda: model.discriminator(pyramid(image), kp)))
    return [(name, count_parameters(module), count_macs(module, run=run)["total"]) for name, module, run in rows]


__all__ = ["count_macs", "model_report"]
