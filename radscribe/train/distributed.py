"""Data-parallel training across processes (``torchrun``), for runs that outgrow one machine.

The loop in :mod:`radscribe.train.loop` calls these helpers; with one process (no ``torchrun``)
every one of them is a no-op, so a single-process run is unchanged bit for bit.

* backend: NCCL when a GPU is present, gloo on CPU;
* sampling: every rank draws the same seeded permutation per epoch and takes every
  ``world``-th sample of each global batch (the effect of a DistributedSampler with the
  config's global ``batch_size``, so a config means the same run at any world size);
* gradients are averaged by :class:`torch.nn.parallel.DistributedDataParallel`; BatchNorm
  buffers are copied from rank 0 before validation and checkpoints, so every rank scores and
  keeps the same model;
* only rank 0 writes checkpoints, history and exports; the others wait at a barrier.

Single machine, 2 processes::

    torchrun --standalone --nproc_per_node 2 "$(which radscribe)" train CONFIG --out runs/NAME

Several machines (a shared run folder, e.g. NFS, is assumed for checkpoints and ``--resume``)::

    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 1 --master_addr HEAD --master_port 29500 \\
        "$(which radscribe)" train CONFIG --out /shared/runs/NAME      # node_rank 1 on the other host
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def init_from_env() -> bool:
    """Join the process group that ``torchrun`` describes in the environment (WORLD_SIZE > 1).

    Returns True when a group was joined here (the caller then calls :func:`shutdown`)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    return True


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def wrap(model: nn.Module) -> nn.Module:
    """The module that the training step calls: DDP around ``model`` when there are several ranks."""
    if world()[1] == 1:
        return model
    return nn.parallel.DistributedDataParallel(model)


def shard(idx, rank: int, size: int):
    """This rank's part of one global batch of indices."""
    return idx if size == 1 else idx[rank::size]


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank."""
    if world()[1] == 1:
        return
    for b in model.buffers():
        dist.broadcast(b.data, 0)


def sum_all(*values: float) -> tuple[float, ...]:
    """Each value summed over the ranks (for epoch loss / counts)."""
    if world()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return tuple(float(v) for v in t)
