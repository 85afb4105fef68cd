"""Scoring meta-RL runs as whole runs: a run's test evaluation with its reference returns, and several runs
paired on the same test goals at every gradient step (``mmaml eval`` and ``mmaml compare``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from mmaml.engine.checkpoint import atomic_write_text
from mmaml.engine.distributed import Distributed
from mmaml.engine.mode_identification import format_mode_identification
from mmaml.engine.statistics import mean_ci95, paired_difference
from mmaml.rl.builder import build_env
from mmaml.rl.config import RLConfig
from mmaml.rl.envs.registry import make_goals, reference_returns
from mmaml.rl.evaluation import evaluate_rl, format_returns_table, per_task_returns, splits_across_ranks


def evaluate_rl_run(config: RLConfig, model, num_tasks: int, seed: int, steps: int,
                    dist: Distributed | None = None) -> dict[str, Any] | None:
    """The test evaluation of a loaded RL run, with the reference returns on the same goals; ``per_task``
    included.

    Under torchrun, a ``task_rng: stream`` run draws every chunk's episodes from one stream, so its
    evaluation does not split: rank 0 evaluates alone (the single process's result) and the other ranks
    get ``None``.
    """
    if dist is not None and dist.active and not splits_across_ranks(config):
        if not dist.is_main:
            return None
        dist = None
    result = evaluate_rl(model, config, build_env(config), make_goals(config.env), num_tasks, seed, steps, dist)
    # the same test goals, one episode each: what doing nothing and a goal-knowing controller score
    result["reference_returns"] = reference_returns(config.env, result["num_tasks"], seed)
    result["method"] = config.method
    result["env"] = config.env
    result["modes"] = list(config.mode_names)
    return result


def report_rl(name: str, result: dict[str, Any]) -> str:
    """What ``mmaml eval`` prints for an RL run's ``result``."""
    refs = result["reference_returns"]
    lines = [format_returns_table({name: result}),
             "references on the same goals: " + ", ".join(
                 f"{key.replace('_', ' ')} {v['mean']:.2f} ± {v['ci95']:.2f}" for key, v in refs.items())]
    if "mode_identification" in result:
        lines.append(format_mode_identification(result["mode_identification"]))
    return "\n".join(lines)


def compare_rl(runs: Sequence[Path], loaded, num_tasks: int | None, seed: int | None, steps: int | None,
               output: Path | None, saved=None) -> dict[str, Any]:
    """Score RL runs on the same test goals; paired differences (run - first run) at every gradient step.

    ``saved``: the runs' saved evaluations (:func:`mmaml.engine.saved_evaluation.load_saved_scores`),
    paired instead of evaluating again.
    """
    reference = loaded[0][0]
    distribution = make_goals(reference.env)
    if saved is not None:
        scores, mode = [s.scores for s in saved], saved[0].mode
        seed, steps = saved[0].seed, saved[0].inner_steps
    else:
        num_tasks = num_tasks or reference.eval_tasks
        seed = reference.eval_seed if seed is None else seed
        steps = reference.eval_inner_steps if steps is None else steps
        scores = []
        for config, model, _ in loaded:
            returns, mode = per_task_returns(model, config, build_env(config), distribution, num_tasks, seed, steps)
            scores.append(returns)
    num_tasks = len(mode)  # rounded up to a multiple of the number of modes
    result: dict[str, Any] = {"num_tasks": num_tasks, "seed": seed, "inner_steps": steps, "metric": "return",
                              "reference": str(runs[0]), "runs": {}}
    print(f"{num_tasks} test tasks (the same goals for every run), average return after 0..{steps} gradient steps, "
          f"mean ± 95% interval; difference = run - {runs[0]} on the same tasks")
    for i, run in enumerate(runs):
        entry: dict[str, Any] = {"returns_by_step": [mean_ci95(r) for r in scores[i]]}
        print(f"{str(run)[-40:]:<40} " + "  ".join(f"{s['mean']:8.2f} ± {s['ci95']:<5.2f}"
                                                   for s in entry["returns_by_step"]))
        if i > 0:
            diffs = [paired_difference(scores[0][k], scores[i][k], mode, distribution.modes) for k in range(steps + 1)]
            entry["difference_by_step"] = diffs
            print(f"{'  difference':<40} " + "  ".join(f"{d['mean']:+8.2f} ± {d['ci95']:<5.2f}" for d in diffs))
        result["runs"][str(run)] = entry
    if output is not None:
        atomic_write_text(output, json.dumps(result, indent=2) + "\n")
        print(f"wrote {output}")
    return result
