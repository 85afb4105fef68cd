"""Per-task losses: each maps predictions and targets ``[T, N, ...]`` to ``[T]``."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def mse_per_task(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of each task over its samples and outputs: ``[T]``."""
    return (pred - target).pow(2).flatten(1).mean(1)


def cross_entropy_per_task(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of each task: logits ``[T, N, C]``, labels ``[T, N]`` -> ``[T]``."""
    t, n, c = logits.shape
    return F.cross_entropy(logits.reshape(t * n, c), labels.reshape(t * n), reduction="none").view(t, n).mean(1)
