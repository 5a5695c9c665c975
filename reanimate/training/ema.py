"""Exponential moving average of network weights (Polyak averaging; timm's ``ModelEmaV2``,
diffusers' ``EMAModel``): ``average <- decay * average + (1 - decay) * weights`` after
every optimisation step. With the small, noisy batches of a short run the average is a
better model than the last weights.

The decay warms up as ``min(decay, (1 + step) / (10 + step))`` (timm, diffusers), so that
the average forgets the random initialisation within the first few hundred steps
instead of ``1 / (1 - decay)`` of them. Buffers (BatchNorm running statistics) are
copied, not averaged; a checkpoint recomputes them for the averaged weights
(:mod:`~reanimate.training.batchnorm`).
"""

from __future__ import annotations

import torch
from torch import nn


def ema_decay_at(decay: float, step: int) -> float:
    """The decay used after optimisation step ``step`` (0-based)."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(average: nn.Module, model: nn.Module, decay: float) -> None:
    """In place: ``average``'s parameters move ``1 - decay`` of the way to ``model``'s;
    its buffers become copies of ``model``'s. Both modules have the same structure."""
    averaged, current = list(average.parameters()), list(model.parameters())
    if len(averaged) != len(current):
        raise ValueError(f"the average has {len(averaged)} parameters, the model {len(current)}")
    if averaged:
        torch._foreach_lerp_(averaged, current, 1.0 - decay)
    for kept, buffer in zip(average.buffers(), model.buffers()):
        kept.copy_(buffer)


__all__ = ["ema_decay_at", "update_ema"]
