"""Which share of a collection this process does: one process, or one rank of a
``torchrun`` job (``torch.distributed``).

A job of ``world_size`` ranks splits its chunks (training-crop batches, test images)
deterministically: rank ``r`` takes chunks ``r, r + N, r + 2N, ...``. The chunks are the
same as in a single-process run (crops are drawn from ``[seed, chunk]``), so the union of
the ranks' rows is the single-process run's rows.

Example (four GPUs of one node; several nodes: ``--nnodes`` and a rendezvous endpoint)::

    torchrun --standalone --nproc_per_node 4 -m tlc_probe.cli collect \\
        --checkpoint HINet-GoPro.pth --model hinet --task deblur --train-size 256 \\
        --data GoPro --layout gopro --out stats/hinet-gopro
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    """Rank ``rank`` of ``world_size`` processes (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in a world of size {self.world_size}")

    def takes(self, chunk: int) -> bool:
        """Whether this rank does ``chunk`` (``chunk % world_size == rank``)."""
        return chunk % self.world_size == self.rank

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in a single process)."""
        if self.world_size > 1:
            dist.barrier()

    @property
    def device(self) -> torch.device:
        """``cuda:<local_rank>`` when CUDA is available, else the CPU."""
        return torch.device(f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu")


def shard_from_env() -> Shard:
    """The :class:`Shard` of this process from torchrun's ``RANK``, ``WORLD_SIZE`` and
    ``LOCAL_RANK`` (a single process when unset). With a world of several ranks the
    default process group is initialised here if it is not yet: backend ``nccl`` on
    CUDA (each rank on ``cuda:LOCAL_RANK``), ``gloo`` on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    shard = Shard(
        rank=int(os.environ.get("RANK", "0")),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if world > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(shard.local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return shard


def close(shard: Shard) -> None:
    """Leave the process group :func:`shard_from_env` joined (no-op for one process)."""
    if shard.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
