"""Scoring supervised runs (regression, image classification) as whole runs: a run's test evaluation, and
several runs paired on the same test tasks (``mmaml eval`` and ``mmaml compare``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from mmaml.engine.checkpoint import atomic_write_text
from mmaml.engine.mode_identification import format_mode_identification
from mmaml.engine.statistics import mean_ci95, paired_difference
from mmaml.supervised.config import SupervisedConfig
from mmaml.supervised.evaluation import evaluate, format_table, per_task_scores


def evaluate_supervised_run(config: SupervisedConfig, model, tasks, metric: str, num_tasks: int, seed: int,
                            steps: int, dist=None) -> dict[str, Any]:
    """The evaluation of a loaded run on ``tasks`` (its test tasks; :func:`mmaml.supervised.evaluation.evaluate`
    with ``metric``), with the run's method, modulation and modes; ``per_task`` included."""
    result = evaluate(model, tasks, num_tasks=num_tasks, seed=seed, steps=steps, metric=metric, dist=dist)
    result["method"] = config.method
    result["modulation"] = config.modulation if config.method == "mumomaml" else None
    result["modes"] = list(config.mode_names)
    return result


def report_supervised(name: str, result: dict[str, Any]) -> str:
    """What ``mmaml eval`` prints for a supervised run's ``result``."""
    lines = [format_table({name: result})]
    if "mode_identification" in result:
        lines.append(format_mode_identification(result["mode_identification"]))
    return "\n".join(lines)


def compare_supervised(runs: Sequence[Path], loaded, make_tasks: Callable[[str], Any], metric: str,
                       num_tasks: int | None, seed: int | None, steps: int | None, output: Path | None,
                       split: str = "test", saved=None) -> dict[str, Any]:
    """Score runs on the same tasks (``make_tasks(split)``) and print each one's paired difference to the first
    (post-adaptation ``metric``).

    ``loaded``: ``load_run`` of each run; ``saved``: their saved evaluations
    (:func:`mmaml.engine.saved_evaluation.load_saved_scores`), paired instead of evaluating again.
    """
    reference = loaded[0][0]
    if saved is not None:
        scores, mode, mode_names = [s.scores[0] for s in saved], saved[0].mode, saved[0].modes
        seed, steps = saved[0].seed, saved[0].inner_steps
    else:
        tasks = make_tasks(split)
        num_tasks = num_tasks or reference.eval_tasks
        seed = reference.eval_seed if seed is None else seed
        steps = reference.eval_inner_steps if steps is None else steps
        scores = []
        for _, model, _ in loaded:
            _, adapted, mode = per_task_scores(model, tasks, num_tasks, seed, steps, metric)
            scores.append(adapted)
        mode_names = tasks.modes
    num_tasks = len(mode)  # rounded up to a multiple of the number of modes
    result = {"num_tasks": num_tasks, "seed": seed, "inner_steps": steps, "metric": metric, "split": split,
              "reference": str(runs[0]), "runs": {}}
    print(f"{num_tasks} {split} tasks (the same for every run), {steps} inner steps; post-adaptation {metric}, "
          f"mean ± 95% interval; difference = run - {runs[0]} on the same tasks")
    print(f"{'run':<44} {'mean':>17} {'difference':>20}")
    for i, run in enumerate(runs):
        own = mean_ci95(scores[i])
        entry = {"post_adaptation": own}
        line = f"{str(run)[-44:]:<44} {own['mean']:>8.4f} ± {own['ci95']:<6.4f}"
        if i > 0:
            diff = paired_difference(scores[0], scores[i], mode, mode_names)
            entry["difference"] = diff
            line += f" {diff['mean']:>+10.4f} ± {diff['ci95']:<6.4f}  " + ", ".join(
                f"{name} {v['mean']:+.4f} ± {v['ci95']:.4f}" for name, v in diff["per_mode"].items())
        result["runs"][str(run)] = entry
        print(line)
    if output:
        atomic_write_text(output, json.dumps(result, indent=2) + "\n")
        print(f"wrote {output}")
    return result
