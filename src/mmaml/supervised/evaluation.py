"""Evaluation over many fresh test tasks: post-modulation and post-adaptation loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mmaml.engine.distributed import SINGLE
from mmaml.engine.evaluation import score_in_chunks
from mmaml.engine.mode_identification import mode_identification
from mmaml.engine.statistics import balanced_count, mean_ci95
from mmaml.metalearners import GradientMetaLearner


def accuracy_per_task(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of correct predictions of each task: logits ``[T, N, C]``, labels ``[T, N]`` -> ``[T]``."""
    return (logits.argmax(-1) == labels).float().mean(1)


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

    ``dist`` (a :class:`~mmaml.engine.distributed.Distributed` under torchrun): every
    rank draws every chunk, scores every ``world``-th one, and the scores are gathered
    in task order on every rank; the result is the single process's.
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    images = metric == "accuracy"
    num_tasks = balanced_count(num_tasks, len(tasks.modes))
    batch_size = balanced_count(batch_size or (20 if images else 250), len(tasks.modes))
    whole = None if images else tasks.sample(num_tasks, generator)
    starts = range(0, num_tasks, batch_size)

    def draw(number: int):
        size = min(batch_size, num_tasks - starts[number])
        return tasks.sample(size, generator) if images else whole.select(slice(starts[number], starts[number] + size))

    def score(number: int, chunk) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        chunk = chunk.to(device)
        out = model(chunk, steps=steps, with_prior=True)
        if images:
            prior = accuracy_per_task(out.prior_query_pred, chunk.query_y)
            adapted = accuracy_per_task(out.query_pred, chunk.query_y)
        else:
            prior, adapted = out.prior_query_loss, out.query_loss
        embedding = out.embedding.cpu() if embeddings is not None and out.embedding is not None else None
        return prior.cpu(), adapted.cpu(), chunk.mode.cpu(), embedding

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            prior, adapted, modes, embedded = score_in_chunks(len(starts), 4, draw, score,
                                                              SINGLE if dist is None else dist)
    finally:
        model.train(was_training)
    if embeddings is not None:
        embeddings[:] = embedded
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
    ``mode_identification`` (see :mod:`mmaml.engine.mode_identification`).
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
        result["mode_identification"] = mode_identification(torch.cat(embeddings), mode, list(tasks.modes))
    result["per_task"] = {
        "mode": mode.tolist(),
        "post_modulation": prior.double().tolist(),
        "post_adaptation": adapted.double().tolist(),
    }
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
