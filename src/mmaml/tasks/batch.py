"""A batch of few-shot tasks, stored as batched tensors."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass
class TaskBatch:
    """``T`` tasks, each with ``K`` support and ``Q`` query samples.

    Attributes:
        support_x: ``[T, K, *input_shape]``
        support_y: ``[T, K, *target_shape]``
        query_x: ``[T, Q, *input_shape]``
        query_y: ``[T, Q, *target_shape]``
        mode: ``[T]`` integer index of the mode (task family or data set) each task came from.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    mode: Tensor

    @property
    def num_tasks(self) -> int:
        return self.support_x.shape[0]

    def to(self, device: torch.device | str) -> "TaskBatch":
        """A copy with every tensor field on ``device``."""
        return replace(
            self,
            **{f.name: getattr(self, f.name).to(device) for f in fields(self) if isinstance(getattr(self, f.name), Tensor)},
        )

    def select(self, index: Tensor | slice | int) -> "TaskBatch":
        """The tasks at ``index`` (keeps the task dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return replace(
            self,
            **{f.name: getattr(self, f.name)[index] for f in fields(self) if isinstance(getattr(self, f.name), Tensor)},
        )
