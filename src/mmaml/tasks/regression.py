"""Multimodal few-shot regression: five function families, mixed into 2, 3 or 5 modes.

Every task draws its function's parameters and its inputs ``x ~ U[-5, 5]``;
support and query targets carry Gaussian noise (std 0.3 in the paper). Tasks
are generated directly as batched tensors from a seeded ``torch.Generator``,
with the same number of tasks of each mode (blocks in mode order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from mmaml.tasks.batch import TaskBatch

X_RANGE = (-5.0, 5.0)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


@dataclass(frozen=True)
class FunctionFamily:
    """A family ``y = f(x; p)``; ``p`` is stored as 3 numbers per task.

    Attributes:
        name: family name used in configs.
        sample: ``(n, generator) -> [n, 3]`` parameters.
        evaluate: ``(params [T, 3], x [T, N, 1]) -> y [T, N, 1]``.
    """

    name: str
    sample: Callable[[int, torch.Generator], Tensor]
    evaluate: Callable[[Tensor, Tensor], Tensor]


def _p(params: Tensor, i: int) -> Tensor:
    return params[:, i].view(-1, 1, 1)


def _sample_sinusoid(n: int, g: torch.Generator) -> Tensor:
    return torch.stack([_uniform(n, 0.1, 5.0, g), _uniform(n, 0.0, math.pi, g), torch.zeros(n)], 1)


def _sample_linear(n: int, g: torch.Generator) -> Tensor:
    return torch.stack([_uniform(n, -3.0, 3.0, g), _uniform(n, -3.0, 3.0, g), torch.zeros(n)], 1)


def _sample_quadratic(n: int, g: torch.Generator) -> Tensor:
    alpha = _uniform(n, 0.02, 0.15, g)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    return torch.stack([sign * alpha, _uniform(n, -3.0, 3.0, g), _uniform(n, -3.0, 3.0, g)], 1)


def _sample_acb(n: int, g: torch.Generator) -> Tensor:
    return torch.stack([_uniform(n, -3.0, 3.0, g) for _ in range(3)], 1)


FAMILIES: dict[str, FunctionFamily] = {
    f.name: f
    for f in [
        # A * sin(x - phi), A ~ U[0.1, 5], phi ~ U[0, pi]
        FunctionFamily("sinusoid", _sample_sinusoid, lambda p, x: _p(p, 0) * torch.sin(x - _p(p, 1))),
        # a * x + b, a, b ~ U[-3, 3]
        FunctionFamily("linear", _sample_linear, lambda p, x: _p(p, 0) * x + _p(p, 1)),
        # s * alpha * (x - c)^2 + b, alpha ~ U[0.02, 0.15], s = +-1, c, b ~ U[-3, 3]
        FunctionFamily("quadratic", _sample_quadratic, lambda p, x: _p(p, 0) * (x - _p(p, 1)) ** 2 + _p(p, 2)),
        # a * tanh(x - c) + b, a, c, b ~ U[-3, 3]
        FunctionFamily("tanh", _sample_acb, lambda p, x: _p(p, 0) * torch.tanh(x - _p(p, 1)) + _p(p, 2)),
        # a * |x - c| + b, a, c, b ~ U[-3, 3]
        FunctionFamily("l1norm", _sample_acb, lambda p, x: _p(p, 0) * (x - _p(p, 1)).abs() + _p(p, 2)),
    ]
}

MODE_SETS: dict[int, tuple[str, ...]] = {
    2: ("sinusoid", "linear"),
    3: ("sinusoid", "linear", "quadratic"),
    5: ("sinusoid", "linear", "quadratic", "tanh", "l1norm"),
}


@dataclass
class RegressionTaskBatch(TaskBatch):
    """A :class:`TaskBatch` that also knows each task's true function.

    Attributes:
        function_params: ``[T, 3]`` parameters of each task's function.
    """

    function_params: Tensor | None = None


class RegressionTasks:
    """A multimodal distribution of 1-D regression tasks.

    Args:
        modes: family names, one per mode, e.g. ``("sinusoid", "linear")``.
        num_support: K support points per task.
        num_query: Q query points per task.
        noise_std: std of the Gaussian noise on support and query targets.
    """

    def __init__(self, modes: Sequence[str], num_support: int = 5, num_query: int = 5, noise_std: float = 0.3):
        unknown = [m for m in modes if m not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown function famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; known: {sorted(FAMILIES)}")
        if not modes:
            raise ValueError("at least one mode is needed")
        self.modes = tuple(modes)
        self.num_support = num_support
        self.num_query = num_query
        self.noise_std = noise_std

    @property
    def num_modes(self) -> int:
        return len(self.modes)

    def mode_counts(self, num_tasks: int) -> list[int]:
        """Tasks per mode: equal shares, the remainder to the first modes."""
        base, extra = divmod(num_tasks, self.num_modes)
        return [base + (1 if m < extra else 0) for m in range(self.num_modes)]

    def sample(self, num_tasks: int, generator: torch.Generator, query_x: Tensor | None = None) -> RegressionTaskBatch:
        """Draw ``num_tasks`` tasks (on the CPU) in mode blocks.

        Args:
            num_tasks: T.
            generator: the source of all randomness (its state advances).
            query_x: optional fixed query inputs ``[Q']`` shared by all tasks
                (e.g. a dense grid for plots); then the query targets are noiseless.
        """
        k, q = self.num_support, self.num_query
        modes, params, xs = [], [], []
        for m, count in enumerate(self.mode_counts(num_tasks)):
            if count == 0:
                continue
            params.append(FAMILIES[self.modes[m]].sample(count, generator))
            xs.append(_uniform(count * (k + q), *X_RANGE, generator).view(count, k + q, 1))
            modes.append(torch.full((count,), m, dtype=torch.long))
        mode, function_params, x = torch.cat(modes), torch.cat(params), torch.cat(xs)
        y = self.evaluate(mode, function_params, x)
        y = y + self.noise_std * torch.randn(y.shape, generator=generator)
        support_x, support_y = x[:, :k], y[:, :k]
        if query_x is None:
            qx, qy = x[:, k:], y[:, k:]
        else:
            qx = query_x.view(1, -1, 1).expand(num_tasks, -1, 1).contiguous()
            qy = self.evaluate(mode, function_params, qx)
        return RegressionTaskBatch(support_x, support_y, qx, qy, mode, function_params)

    def evaluate(self, mode: Tensor, function_params: Tensor, x: Tensor) -> Tensor:
        """Noiseless targets: ``mode [T]``, ``function_params [T, 3]``, ``x [T, N, 1]`` -> ``[T, N, 1]``."""
        y = torch.empty_like(x)
        for m, name in enumerate(self.modes):
            idx = (mode == m).nonzero(as_tuple=True)[0]
            if len(idx):
                y[idx] = FAMILIES[name].evaluate(function_params[idx], x[idx])
        return y
