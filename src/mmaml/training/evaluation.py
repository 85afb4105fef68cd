"""Evaluation over many fresh test tasks: post-modulation and post-adaptation loss."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mmaml.metalearners import GradientMetaLearner
from mmaml.tasks.regression import RegressionTasks


def mean_ci95(values: Tensor) -> dict[str, float]:
    """Mean and 95% interval half-width ``1.96 * std / sqrt(n)`` of ``values [n]``."""
    values = values.double()
    n = values.numel()
    std = float(values.std(unbiased=True)) if n > 1 else 0.0
    return {"mean": float(values.mean()), "ci95": 1.96 * std / math.sqrt(n)}


def per_task_losses(
    model: GradientMetaLearner,
    tasks: RegressionTasks,
    num_tasks: int,
    seed: int,
    steps: int,
    batch_size: int = 250,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(post_modulation [n], post_adaptation [n], mode [n])`` over ``num_tasks`` fresh tasks.

    The tasks depend only on ``seed``, so every model is scored on the same tasks.
    """
    device = next(model.parameters()).device
    batch = tasks.sample(num_tasks, torch.Generator().manual_seed(seed))
    prior, adapted = [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, num_tasks, batch_size):
            chunk = batch.select(slice(start, start + batch_size)).to(device)
            out = model(chunk, steps=steps, with_prior=True)
            prior.append(out.prior_query_loss.cpu())
            adapted.append(out.query_loss.cpu())
    model.train(was_training)
    return torch.cat(prior), torch.cat(adapted), batch.mode


def evaluate(
    model: GradientMetaLearner,
    tasks: RegressionTasks,
    num_tasks: int = 2000,
    seed: int = 20190601,
    steps: int = 5,
) -> dict[str, Any]:
    """Query MSE after modulation and after ``steps`` inner steps: overall and per mode."""
    prior, adapted, mode = per_task_losses(model, tasks, num_tasks, seed, steps)
    result: dict[str, Any] = {
        "num_tasks": num_tasks,
        "inner_steps": steps,
        "seed": seed,
        "post_modulation_mse": mean_ci95(prior),
        "post_adaptation_mse": mean_ci95(adapted),
        "per_mode": {},
    }
    for m, name in enumerate(tasks.modes):
        idx = mode == m
        result["per_mode"][name] = {
            "num_tasks": int(idx.sum()),
            "post_modulation_mse": mean_ci95(prior[idx]),
            "post_adaptation_mse": mean_ci95(adapted[idx]),
        }
    return result


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A text table of ``{name: evaluate(...)}``: one row per model and mode."""
    lines = [f"{'model':<28} {'mode':<10} {'post modulation':>22} {'post adaptation':>22}"]
    for name, r in results.items():
        rows = [("all", r)] + list(r["per_mode"].items())
        for mode, v in rows:
            pm, pa = v["post_modulation_mse"], v["post_adaptation_mse"]
            lines.append(
                f"{name:<28} {mode:<10} {pm['mean']:>12.4f} ± {pm['ci95']:<7.4f} {pa['mean']:>12.4f} ± {pa['ci95']:<7.4f}"
            )
            name = ""
    return "\n".join(lines)
