"""Data-parallel meta-training over processes with ``torch.distributed``, as launched by ``torchrun``.

One run, ``W`` processes (ranks): every rank draws the same whole meta-batch
(from a generator derived from the seed and the iteration, ``task_rng:
per_iteration``, so the draw does not depend on the layout), keeps its share of
``T / W`` tasks, adapts them and back-propagates; the meta-gradients are averaged
with one all-reduce, and every rank takes the same optimizer step. Rank 0 alone
writes the run folder (config, metrics, TensorBoard, checkpoints) and the
progress bar. Since the task stream depends only on (seed, iteration), a run can
resume with any number of ranks, one included.

:class:`Distributed` owns the process group: it is created from torchrun's
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``) by
:meth:`Distributed.from_environment` and closed by :meth:`Distributed.close`;
without those variables it is the single-process no-op :data:`SINGLE`. Gloo on
CPUs, NCCL on GPUs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
from torch import Tensor

from mmaml.errors import ConfigError, UserError


class DistributedError(UserError):
    """A distributed run cannot go on: a rank failed, or the ranks disagree."""


@dataclass
class Distributed:
    """This process's place in a data-parallel run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    backend: str | None = None

    @classmethod
    def from_environment(cls) -> "Distributed":
        """Join the process group torchrun describes in the environment, or :data:`SINGLE` without one."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return SINGLE
        import torch.distributed as dist

        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend)
        return cls(rank, world, local_rank, local_world, backend)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, configured: str) -> str:
        """The device of this rank: its own GPU (``LOCAL_RANK``) when the config asks for CUDA or auto and one
        is present, else what the config says."""
        if self.active and configured in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return configured

    def shard(self, num_tasks: int) -> slice:
        """This rank's tasks of a meta-batch: a contiguous ``num_tasks / world`` of them."""
        if num_tasks % self.world:
            raise ConfigError(f"meta_batch_size {num_tasks} does not divide among {self.world} processes; "
                              f"use a multiple of {self.world} (--set meta_batch_size=...) or another --nproc_per_node")
        share = num_tasks // self.world
        return slice(self.rank * share, (self.rank + 1) * share)

    def _all_reduce(self, tensor: Tensor) -> Tensor:
        import torch.distributed as dist

        try:
            dist.all_reduce(tensor)
        except RuntimeError as exc:  # a peer died or the connection broke
            raise DistributedError(f"rank {self.rank}: another process of the run failed ({str(exc).splitlines()[0]}); "
                                   "the last checkpoint is kept: start the run again with --resume") from None
        return tensor

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the ranks (the value itself when not distributed)."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        return float(self._all_reduce(t)[0]) / self.world

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Replace every parameter's gradient by its mean over the ranks (one all-reduce; a missing gradient is 0)."""
        if not self.active:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads]).to(torch.float32)
        self._all_reduce(flat)
        flat /= self.world
        start = 0
        for p in params:
            n = p.numel()
            p.grad = flat[start:start + n].view_as(p).to(p.dtype).clone()
            start += n

    def sum_(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over the ranks in place and return it."""
        if self.active:
            self._all_reduce(tensor)
        return tensor

    def average_(self, tensor: Tensor) -> Tensor:
        """Average ``tensor`` over the ranks in place and return it."""
        if self.active:
            self._all_reduce(tensor)
            tensor /= self.world
        return tensor

    def gather_chunks(self, numbers: list[int], *columns: list[Tensor]) -> list[list[Tensor]]:
        """Every rank's chunks of per-task results, in chunk order, on every rank.

        ``numbers`` are this rank's chunk numbers; each column is a list with one
        tensor per chunk (an empty column stays empty).
        """
        import torch.distributed as dist

        mine = list(zip(numbers, *[c if c else [None] * len(numbers) for c in columns]))
        everyone: list = [None] * self.world
        try:
            dist.all_gather_object(everyone, mine)
        except RuntimeError as exc:
            raise DistributedError(f"rank {self.rank}: another process of the evaluation failed "
                                   f"({str(exc).splitlines()[0]})") from None
        rows = sorted((row for part in everyone for row in part), key=lambda row: row[0])
        return [[row[i + 1] for row in rows if row[i + 1] is not None] for i in range(len(columns))]

    def agree(self, text: str, what: str) -> None:
        """Raise :class:`DistributedError` unless every rank passes the same ``text`` (e.g. its config)."""
        if not self.active:
            return
        digest = torch.tensor(list(hashlib.sha256(text.encode()).digest()[:8]), dtype=torch.float64)
        low, high = digest.clone(), digest.clone()
        import torch.distributed as dist

        try:
            dist.all_reduce(low, op=dist.ReduceOp.MIN)
            dist.all_reduce(high, op=dist.ReduceOp.MAX)
        except RuntimeError as exc:
            raise DistributedError(f"rank {self.rank}: could not compare the {what} across processes "
                                   f"({str(exc).splitlines()[0]})") from None
        if not torch.equal(low, high):
            raise DistributedError(f"the processes of this run were given different {what}s; launch every rank "
                                   "with the same command line")

    def close(self) -> None:
        """Leave the process group (idempotent)."""
        if self.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


SINGLE = Distributed()


def iteration_generator(seed: int, iteration: int, stream: str = "tasks") -> torch.Generator:
    """A CPU generator determined by (seed, iteration, stream) alone: the randomness of one meta-iteration."""
    digest = hashlib.sha256(f"{seed}/{iteration}/{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
