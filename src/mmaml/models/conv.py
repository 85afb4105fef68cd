"""The paper's image learner and task encoder: a 4-layer strided conv stack."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class ConvBlock(nn.Module):
    """conv 3x3 (stride 2, padding 1) -> batch norm (no affine, batch statistics) -> ReLU.

    Modulating ``<block>.norm`` applies FiLM after batch norm and before ReLU, as in the paper.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_channels, affine=False, track_running_stats=False)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.norm(self.conv(x)))


class ConvLearner(nn.Module):
    """``[N, 3, S, S] -> [N, num_classes]``: conv blocks, global average pool, linear.

    Blocks are ``blocks.0`` ... ``blocks.3``; their modulation sites are
    ``blocks.i.norm`` (see :meth:`modulation_sites`).
    """

    def __init__(self, num_classes: int, channels: Sequence[int] = (32, 64, 128, 256), in_channels: int = 3):
        super().__init__()
        sizes = [in_channels, *channels]
        self.blocks = nn.ModuleList(ConvBlock(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = nn.Linear(sizes[-1], num_classes)

    def modulation_sites(self) -> list[str]:
        return [f"blocks.{i}.norm" for i in range(len(self.blocks))]

    def features(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x.mean((-2, -1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class ConvTaskEncoder(nn.Module):
    """The paper's image task encoder: the conv stack on each support image,
    linear 256 -> 128 + ReLU, averaged over the support set. Labels are not used.

    Batch norm statistics are taken per task (over that task's support images).
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128, 256), embedding_dim: int = 128, in_channels: int = 3):
        super().__init__()
        sizes = [in_channels, *channels]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(sizes[:-1], sizes[1:]))
        self.project = nn.Linear(sizes[-1], embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, support_x: Tensor, support_y: Tensor | None = None) -> Tensor:
        """``support_x [T, M, 3, S, S]`` -> ``[T, embedding_dim]``."""
        t, m = support_x.shape[:2]
        h = support_x.reshape(t * m, *support_x.shape[2:])
        for conv in self.convs:
            h = conv(h)
            per_task = h.view(t, m, *h.shape[1:])
            mean = per_task.mean((1, 3, 4), keepdim=True)
            var = per_task.var((1, 3, 4), keepdim=True, unbiased=False)
            h = torch.relu((per_task - mean) / torch.sqrt(var + 1e-5)).view_as(h)
        pooled = h.mean((-2, -1)).view(t, m, -1)
        return torch.relu(self.project(pooled)).mean(1)
