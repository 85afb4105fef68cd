"""The paper's regression learner: an MLP with optional bias transformation."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class RegressionMLP(nn.Module):
    """``in -> hidden... -> out`` with ReLU; hidden layers are ``hidden.0``, ``hidden.1``, ...

    Modulating ``hidden.i`` acts on that layer's pre-activation (after the linear
    map, before ReLU), as in the paper.

    Args:
        in_features: input size (1 for the regression tasks).
        hidden_sizes: widths of the hidden layers (paper: 100, 100, 100).
        out_features: output size.
        bias_transformation: size of a learned vector concatenated to every
            input (paper's MAML baselines: 20; 0 disables it).
        weight_std: std of the normal weight initialisation (paper: 0.01); biases start at 0.
    """

    def __init__(
        self,
        in_features: int = 1,
        hidden_sizes: Sequence[int] = (100, 100, 100),
        out_features: int = 1,
        bias_transformation: int = 0,
        weight_std: float = 0.01,
    ):
        super().__init__()
        self.bias_transformation = nn.Parameter(torch.zeros(bias_transformation)) if bias_transformation > 0 else None
        sizes = [in_features + bias_transformation, *hidden_sizes]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.output = nn.Linear(sizes[-1], out_features)
        for layer in [*self.hidden, self.output]:
            nn.init.normal_(layer.weight, std=weight_std)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x [N, in_features] -> [N, out_features]``."""
        if self.bias_transformation is not None:
            x = torch.cat([x, self.bias_transformation.expand(*x.shape[:-1], -1)], dim=-1)
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.output(x)
