"""One random generator per task: randomness that does not depend on which tasks share a process.

A distributed meta-RL run (see :mod:`mmaml.engine.distributed`) gives each rank a
share of the meta-batch's tasks. For the run to equal a single process's, task
``i``'s start states and exploration noise must come from a source of its own,
keyed by (seed, iteration, ``i``), rather than from one stream that all tasks of a
process draw in turn. :class:`TaskGenerators` is that: where a sampler or an
environment would draw ``[T, ...]`` from one generator, it draws each task's
``[...]`` from the task's generator and stacks them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from mmaml.engine.distributed import iteration_generator


class TaskGenerators:
    """``T`` CPU generators, one per task, in task order."""

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = list(generators)

    @classmethod
    def for_tasks(cls, seed: int, iteration: int, tasks: Sequence[int]) -> "TaskGenerators":
        """The generators of the meta-batch tasks numbered ``tasks`` at ``iteration`` of the run seeded ``seed``."""

        return cls([iteration_generator(seed, iteration, f"task{i}") for i in tasks])

    @classmethod
    def for_test_tasks(cls, seed: int, stream: str, tasks: Sequence[int]) -> "TaskGenerators":
        """The generators of the test tasks numbered ``tasks`` of the evaluation seeded ``seed`` (``stream``
        names what they draw, e.g. ``"returns"``), apart from every training iteration's."""

        return cls([iteration_generator(seed, -1, f"test-{stream}{i}") for i in tasks])

    def __len__(self) -> int:
        return len(self.generators)

    def per_task(self, draw: Callable[[torch.Generator], Tensor], dim: int = 0) -> Tensor:
        """``draw(g)`` for each task's generator, stacked along ``dim`` (the task dimension)."""
        return torch.stack([draw(g) for g in self.generators], dim=dim)


def randn_tasks(generator: torch.Generator | TaskGenerators, shape: tuple[int, ...], task_dim: int) -> Tensor:
    """Standard normal noise of ``shape`` whose ``task_dim`` indexes the tasks.

    From one generator: a single draw. From :class:`TaskGenerators`: each task's
    slice from its own generator (``shape[task_dim]`` must be their number).
    """
    if isinstance(generator, TaskGenerators):
        if shape[task_dim] != len(generator):
            raise ValueError(f"{len(generator)} task generators for {shape[task_dim]} tasks")
        inner = shape[:task_dim] + shape[task_dim + 1:]
        return generator.per_task(lambda g: torch.randn(inner, generator=g), dim=task_dim)
    return torch.randn(shape, generator=generator)
