"""Discounted returns, generalised advantage estimation and advantage normalisation.

All functions work on the last dimension (time, ``H`` steps) of any batch shape,
with a fixed horizon: an episode ends after ``H`` steps and nothing is
bootstrapped beyond it. The discounted sums are one matrix product each
(an upper-triangular ``[H, H]`` matrix of powers of the discount), not a
Python loop over time.
"""

from __future__ import annotations

import torch
from torch import Tensor


def discount_matrix(horizon: int, discount: float, dtype=torch.float32, device=None) -> Tensor:
    """``M [H, H]`` with ``M[j, i] = discount ** (j - i)`` for ``j >= i`` else 0, so ``x @ M`` sums forward."""
    idx = torch.arange(horizon, device=device)
    power = (idx.view(-1, 1) - idx.view(1, -1)).to(torch.float64)
    m = torch.where(power >= 0, torch.tensor(discount, dtype=torch.float64, device=device) ** power.clamp(min=0),
                    torch.zeros((), dtype=torch.float64, device=device))
    return m.to(dtype)


def discounted_returns(rewards: Tensor, discount: float) -> Tensor:
    """``G_t = sum_{k >= t} discount^(k - t) r_k``: ``rewards [..., H]`` -> ``[..., H]``."""
    return rewards @ discount_matrix(rewards.shape[-1], discount, rewards.dtype, rewards.device)


def gae(rewards: Tensor, values: Tensor, discount: float, gae_lambda: float) -> Tensor:
    """Generalised advantage estimates ``sum_k (discount * lambda)^k delta_{t+k}``.

    ``delta_t = r_t + discount * V_{t+1} - V_t`` with ``V_H = 0`` (the episode
    ends at the horizon). ``rewards, values [..., H]`` -> ``[..., H]``.
    """
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)
    deltas = rewards + discount * next_values - values
    return deltas @ discount_matrix(rewards.shape[-1], discount * gae_lambda, rewards.dtype, rewards.device)


def normalize_per_task(advantages: Tensor, eps: float = 1e-8) -> Tensor:
    """Zero mean, unit standard deviation over each task's steps: ``[T, ...]`` -> ``[T, ...]``."""
    flat = advantages.reshape(advantages.shape[0], -1)
    mean = flat.mean(1, keepdim=True)
    std = flat.std(1, keepdim=True)
    return ((flat - mean) / (std + eps)).view_as(advantages)
