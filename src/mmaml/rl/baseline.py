"""The linear feature baseline of MAML-TRPO, fitted per task (all tasks at once).

The value of a step is a linear function of the features
``[o, o^2, t, t^2, t^3, 1]`` (``o`` the observation, ``t`` the step index /
100), fitted by ridge regression to the discounted returns of the task's
episodes. All tasks are fitted in one batched solve.
"""

from __future__ import annotations

import torch
from torch import Tensor


def features(observations: Tensor) -> Tensor:
    """``observations [T, E, H, O]`` -> features ``[T, E, H, 2 * O + 4]``."""
    h = observations.shape[-2]
    t = (torch.arange(h, dtype=observations.dtype, device=observations.device) / 100.0)
    t = t.view(*([1] * (observations.dim() - 2)), h, 1).expand(*observations.shape[:-1], 1)
    return torch.cat([observations, observations.pow(2), t, t.pow(2), t.pow(3), torch.ones_like(t)], dim=-1)


def fit_linear_baseline(observations: Tensor, returns: Tensor, reg: float = 1e-5, tries: int = 5) -> Tensor:
    """Fit each task's baseline and return its values on the same steps.

    Args:
        observations: ``[T, E, H, O]``.
        returns: ``[T, E, H]`` discounted returns (the regression targets).
        reg: ridge coefficient; multiplied by 10 (up to ``tries`` times) while
            the solve of a task is not finite.

    Returns:
        ``[T, E, H]`` fitted values, in the dtype of ``returns``.
    """
    t = returns.shape[0]
    x = features(observations).reshape(t, -1, 2 * observations.shape[-1] + 4).double()
    y = returns.reshape(t, -1, 1).double()
    xtx = x.transpose(1, 2) @ x
    xty = x.transpose(1, 2) @ y
    eye = torch.eye(xtx.shape[-1], dtype=xtx.dtype, device=xtx.device)
    weights = torch.zeros_like(xty)
    todo = torch.ones(t, dtype=torch.bool, device=x.device)
    for _ in range(tries):
        w, info = torch.linalg.solve_ex(xtx + reg * eye, xty)
        ok = (info == 0) & torch.isfinite(w).all(dim=(1, 2))
        take = todo & ok
        weights[take] = w[take]
        todo = todo & ~ok
        if not bool(todo.any()):
            break
        reg *= 10
    return (x @ weights).view_as(returns).to(returns.dtype)
