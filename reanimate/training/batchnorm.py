"""Precise BatchNorm statistics: recompute the running mean and variance that a model
uses in eval mode from a fixed number of batches of its current weights (Wu & Johnson,
"Rethinking 'Batch' in BatchNorm", 2021, Sec. 3; ``PreciseBN`` of pycls / detectron2).

Why: during training, BatchNorm keeps an exponential moving average (momentum 0.1) of
the statistics of the last ~10 batches, each computed with weights that have changed
since, and including the equivariance pass on TPS-warped frames that inference never
sees. With the small batches of a short run the estimate can be far off: a synthetic-64
checkpoint whose background motion predictor worked with batch statistics (visible-pixel
flow error 2.4 px) moved the whole frame by ~4 px in eval mode (6.9 px), until its
statistics were recomputed over 45 batches (2.37 px).

The recomputation replaces the statistics by the equal-weight average of the batch
means and (unbiased) batch variances over the given batches (``momentum = None``), then
puts everything else (momentum, ``num_batches_tracked``, train / eval mode) back.
Parameters are not touched, so training goes on exactly as it would have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def batchnorm_layers(module: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers (any dimension, SyncBatchNorm included) that track running
    statistics."""
    return [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_batchnorm_statistics(module: nn.Module, forward: Callable[[Any], object], batches: Iterable[Any]) -> int:
    """Replace the running statistics of ``module``'s BatchNorm layers by their average
    over ``batches``.

    Args:
        module: holds the BatchNorm layers (it is put in train mode meanwhile).
        forward: called with each batch; it must run the layers on it the way inference
            does (e.g. keypoints of source and driving, then the generator).
        batches: any iterable; each item is handed to ``forward``.

    Returns:
        The number of batches used. With none (an empty iterable) or no BatchNorm layer,
        or when ``forward`` raises, the statistics are left as they were.
    """
    layers = batchnorm_layers(module)
    if not layers:
        return 0
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in layers]
    modes = {m: m.training for m in module.modules()}
    count, done = 0, False
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: every batch weighs the same
        module.train()
        for batch in batches:
            forward(batch)
            count += 1
        done = True
    finally:
        for m, (momentum, mean, var, tracked) in zip(layers, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)
            if count == 0 or not done:  # nothing seen, or stopped by an error: as before
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
        for m, training in modes.items():
            m.training = training
    return count


__all__ = ["batchnorm_layers", "recompute_batchnorm_statistics"]
