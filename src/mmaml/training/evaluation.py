"""Evaluation over many fresh test tasks: post-modulation and post-adaptation loss."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mmaml.metalearners import GradientMetaLearner


def mean_ci95(values: Tensor) -> dict[str, float]:
    """Mean and 95% interval half-width ``1.96 * std / sqrt(n)`` of ``values [n]``."""
    values = values.double()
    n = values.numel()
    std = float(values.std(unbiased=True)) if n > 1 else 0.0
    return {"mean": float(values.mean()), "ci95": 1.96 * std / math.sqrt(n)}


def accuracy_per_task(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of correct predictions of each task: logits ``[T, N, C]``, labels ``[T, N]`` -> ``[T]``."""
    return (logits.argmax(-1) == labels).float().mean(1)


def balanced_count(num_tasks: int, num_modes: int) -> int:
    """``num_tasks`` rounded up to a multiple of ``num_modes``: every evaluation holds as many tasks of each mode."""
    return -(-num_tasks // num_modes) * num_modes


def per_task_scores(
    model: GradientMetaLearner,
    tasks,
    num_tasks: int,
    seed: int,
    steps: int,
    metric: str = "mse",
    batch_size: int | None = None,
    embeddings: list[Tensor] | None = None,
    dist=None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(post_modulation [n], post_adaptation [n], mode [n])`` over ``n`` fresh tasks.

    ``n`` is ``num_tasks`` rounded up to a multiple of the number of modes, and image
    tasks are drawn in chunks that are multiples of it too, so that every mode has
    exactly ``n / modes`` tasks (tasks are drawn in mode blocks within each draw).

    ``embeddings``, when a list is given, receives the task embeddings ``[chunk, E]`` of a
    model that has them (MuMoMAML), chunk by chunk in task order.

    ``metric`` is ``"mse"`` (the query loss) or ``"accuracy"``. The tasks depend
    only on ``seed``, so every model is scored on the same tasks. Regression
    tasks are drawn at once; image tasks chunk by chunk from one generator.

    ``dist`` (a :class:`~mmaml.training.distributed.Distributed` under torchrun): every
    rank draws every chunk, scores every ``world``-th one, and the scores are gathered
    in task order on every rank; the result is the single process's.
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    images = metric == "accuracy"
    modes = len(tasks.modes)
    num_tasks = balanced_count(num_tasks, modes)
    batch_size = balanced_count(batch_size or (20 if images else 250), modes)
    whole = None if images else tasks.sample(num_tasks, generator)
    prior, adapted, modes = [], [], []
    was_training = model.training
    model.eval()
    rank, world = (dist.rank, dist.world) if dist is not None else (0, 1)
    mine = []  # the chunk numbers this rank scored
    with torch.no_grad():
        for number, start in enumerate(range(0, num_tasks, batch_size)):
            size = min(batch_size, num_tasks - start)
            chunk = tasks.sample(size, generator) if images else whole.select(slice(start, start + size))
            if number % world != rank:
                continue  # drawn all the same, to keep the generator where a single process has it
            mine.append(number)
            chunk = chunk.to(device)
            out = model(chunk, steps=steps, with_prior=True)
            if images:
                prior.append(accuracy_per_task(out.prior_query_pred, chunk.query_y).cpu())
                adapted.append(accuracy_per_task(out.query_pred, chunk.query_y).cpu())
            else:
                prior.append(out.prior_query_loss.cpu())
                adapted.append(out.query_loss.cpu())
            modes.append(chunk.mode.cpu())
            if embeddings is not None and out.embedding is not None:
                embeddings.append(out.embedding.cpu())
    model.train(was_training)
    if world > 1:
        prior, adapted, modes, gathered = dist.gather_chunks(mine, prior, adapted, modes,
                                                            embeddings if embeddings is not None else [])
        if embeddings is not None:
            embeddings[:] = gathered
    return torch.cat(prior), torch.cat(adapted), torch.cat(modes)


def evaluate(
    model: GradientMetaLearner,
    tasks,
    num_tasks: int = 2000,
    seed: int = 20190601,
    steps: int = 5,
    metric: str = "mse",
    dist=None,
) -> dict[str, Any]:
    """Query MSE or accuracy after modulation and after ``steps`` inner steps: overall and per mode.

    Keys: ``post_modulation_<metric>`` and ``post_adaptation_<metric>``, each
    ``{"mean", "ci95"}``, ``per_mode`` with the same per mode name, and
    ``per_task``: ``{"mode", "post_modulation", "post_adaptation"}`` lists, one
    entry per task (for paired comparisons between runs scored on the same tasks).
    A model with task embeddings (MuMoMAML) on several modes also gets
    ``mode_identification`` (see :mod:`mmaml.training.mode_identification`).
    """
    embeddings: list[Tensor] = []
    prior, adapted, mode = per_task_scores(model, tasks, num_tasks, seed, steps, metric, embeddings=embeddings,
                                           dist=dist)
    num_tasks = len(mode)  # rounded up to a multiple of the number of modes
    result: dict[str, Any] = {
        "num_tasks": num_tasks,
        "inner_steps": steps,
        "seed": seed,
        "metric": metric,
        f"post_modulation_{metric}": mean_ci95(prior),
        f"post_adaptation_{metric}": mean_ci95(adapted),
        "per_mode": {},
    }
    for m, name in enumerate(tasks.modes):
        idx = mode == m
        result["per_mode"][name] = {
            "num_tasks": int(idx.sum()),
            f"post_modulation_{metric}": mean_ci95(prior[idx]),
            f"post_adaptation_{metric}": mean_ci95(adapted[idx]),
        }
    if embeddings and len(tasks.modes) > 1 and num_tasks >= 4:
        from mmaml.training.mode_identification import mode_identification

        result["mode_identification"] = mode_identification(torch.cat(embeddings), mode, list(tasks.modes))
    result["per_task"] = {
        "mode": mode.tolist(),
        "post_modulation": prior.double().tolist(),
        "post_adaptation": adapted.double().tolist(),
    }
    return result


TASK_KEYS = {
    "regression": ("modes", "num_support", "num_query", "noise_std"),
    "classification": ("datasets", "num_ways", "num_shots", "num_query", "image_size", "images_per_class"),
    "rl": ("env",),
}


def task_signature(config) -> dict[str, Any]:
    """The config values that decide which test tasks a run is evaluated on."""
    return {"task": config.task, **{k: getattr(config, k) for k in TASK_KEYS[config.task]}}


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


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """A text table of ``{name: evaluate(...)}``: one row per model and mode."""
    metric = next(iter(results.values())).get("metric", "mse") if results else "mse"
    unit = "query MSE" if metric == "mse" else "query accuracy"
    lines = [f"{'model':<28} {'mode':<14} {'post modulation':>22} {'post adaptation':>22}   ({unit})"]
    for name, r in results.items():
        rows = [("all", r)] + list(r["per_mode"].items())
        for mode, v in rows:
            pm, pa = v[f"post_modulation_{metric}"], v[f"post_adaptation_{metric}"]
            lines.append(
                f"{name:<28} {mode:<14} {pm['mean']:>12.4f} ± {pm['ci95']:<7.4f} {pa['mean']:>12.4f} ± {pa['ci95']:<7.4f}"
            )
            name = ""
    return "\n".join(lines)
