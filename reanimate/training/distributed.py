"""Multi-process training with ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node N -m reanimate train ...`` sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; each process trains on its shard of every epoch (see
:class:`reanimate.data.frames.SeededSampler`) with ``batch_size / N`` samples, DDP
averages the gradients, and only rank 0 logs and writes checkpoints. Backend: NCCL on
CUDA, gloo on CPU.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class DistributedContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group when launched by ``torchrun``; a single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(device=device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank, local_rank, world_size, device)


def wrap(module: nn.Module, context: DistributedContext) -> nn.Module:
    """DDP around a training objective (identity in a single process)."""
    if not context.enabled or not any(p.requires_grad for p in module.parameters()):
        return module
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def sync_batchnorm(module: nn.Module, context: DistributedContext) -> nn.Module:
    """SyncBatchNorm across processes; PyTorch supports it on CUDA only, so CPU runs keep
    per-process statistics (DDP still broadcasts rank 0's running statistics)."""
    if context.enabled and context.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if context.enabled:
        log.info("SyncBatchNorm needs CUDA; CPU processes keep per-process batch statistics")
    return module


def any_rank(flag: bool, context: DistributedContext) -> bool:
    """True on every rank when ``flag`` is true on any rank (e.g. "stop now")."""
    if not context.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=context.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def mean_over_ranks(values: dict[str, float], context: DistributedContext) -> dict[str, float]:
    if not context.enabled or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    return {k: float(v) / context.world_size for k, v in zip(keys, tensor.tolist())}


def average_buffers(module: nn.Module, context: DistributedContext) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over the ranks, so
    that a checkpoint holds the statistics of all the data, not only rank 0's."""
    if not context.enabled:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer.data)
            buffer.data /= context.world_size


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
