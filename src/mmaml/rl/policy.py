"""The meta-RL policy: a Gaussian MLP whose hidden units can be modulated.

The policy is an ordinary ``nn.Module`` run through the core
:class:`~mmaml.core.learner.Learner`, so MuMoMAML modulates it, and the inner
loop adapts it, exactly as any other learner: per-task parameters, batched
over tasks with ``torch.func.vmap``. Its forward returns the mean and the
log standard deviation side by side, so the log-std adapts in the inner loop
like every other parameter (as in MAML-TRPO).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2 * math.pi)


class GaussianMLPPolicy(nn.Module):
    """``obs -> hidden (tanh) ... -> mean``, with a learned state-independent log-std.

    Hidden layers are ``hidden.0``, ``hidden.1``, ...; modulating ``hidden.i``
    acts on its pre-activation (after the linear map, before tanh).

    Args:
        observation_dim: size of an observation.
        action_dim: size of an action.
        hidden_sizes: widths of the hidden layers (64, 64 as the authors' code).
        init_log_std: initial log standard deviation of every action dimension.
    """

    def __init__(self, observation_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (64, 64),
                 init_log_std: float = 0.0):
        super().__init__()
        sizes = [observation_dim, *hidden_sizes]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.mean = nn.Linear(sizes[-1], action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(init_log_std)))
        for layer in [*self.hidden, self.mean]:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.action_dim = action_dim

    def forward(self, observations: Tensor) -> Tensor:
        """``observations [N, observation_dim]`` -> ``[N, 2 * action_dim]``: mean, then log-std."""
        h = observations
        for layer in self.hidden:
            h = torch.tanh(layer(h))
        mean = self.mean(h)
        return torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)

    @property
    def modulation_sites(self) -> list[str]:
        """Names of the hidden layers (the sites MuMoMAML modulates)."""
        return [f"hidden.{i}" for i in range(len(self.hidden))]


def split_distribution(pred: Tensor) -> tuple[Tensor, Tensor]:
    """``[..., 2A]`` policy output -> ``(mean [..., A], log_std [..., A])``."""
    return pred.chunk(2, dim=-1)


def log_prob(pred: Tensor, actions: Tensor) -> Tensor:
    """Log-density of ``actions [..., A]`` under the diagonal Gaussian ``pred [..., 2A]``: ``[...]``."""
    mean, log_std = split_distribution(pred)
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def kl_divergence(old: Tensor, new: Tensor) -> Tensor:
    """``KL(old || new)`` of diagonal Gaussians given as ``[..., 2A]`` outputs: ``[...]``."""
    mu0, ls0 = split_distribution(old)
    mu1, ls1 = split_distribution(new)
    var0, var1 = torch.exp(2 * ls0), torch.exp(2 * ls1)
    return (ls1 - ls0 + (var0 + (mu0 - mu1).pow(2)) / (2 * var1) - 0.5).sum(-1)


def sample_actions(pred: Tensor, noise: Tensor) -> Tensor:
    """Reparameterised draw ``mean + std * noise``: ``pred [..., 2A]``, ``noise [..., A]`` -> ``[..., A]``."""
    mean, log_std = split_distribution(pred)
    return mean + torch.exp(log_std) * noise
