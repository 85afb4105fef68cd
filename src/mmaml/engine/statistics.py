"""Statistics of per-task scores: means with 95% intervals, paired differences, balanced task counts."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor


def mean_ci95(values: Tensor) -> dict[str, float]:
    """Mean and 95% interval half-width ``1.96 * std / sqrt(n)`` of ``values [n]``."""
    values = values.double()
    n = values.numel()
    std = float(values.std(unbiased=True)) if n > 1 else 0.0
    return {"mean": float(values.mean()), "ci95": 1.96 * std / math.sqrt(n)}


def balanced_count(num_tasks: int, num_modes: int) -> int:
    """``num_tasks`` rounded up to a multiple of ``num_modes``: every evaluation holds as many tasks of each mode."""
    return -(-num_tasks // num_modes) * num_modes


def paired_difference(reference: Tensor, other: Tensor, mode: Tensor, mode_names) -> dict[str, Any]:
    """``other - reference`` per task (the same tasks, in the same order): mean and 95% interval.

    Pairing removes the spread of task difficulty that both runs share, so the
    interval is much narrower than that of either mean. Returns
    ``{"mean", "ci95", "per_mode": {name: {"mean", "ci95"}}}``.
    """
    diff = other.double() - reference.double()
    result: dict[str, Any] = dict(mean_ci95(diff))
    result["per_mode"] = {name: mean_ci95(diff[mode == m]) for m, name in enumerate(mode_names)}
    return result
