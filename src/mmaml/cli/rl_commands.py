"""The meta-RL side of ``mmaml eval``, ``compare`` and ``plot`` (the commands dispatch here for RL runs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from mmaml.training.checkpoint import atomic_write_text

PLOT_SEED = 11


def _label(run_dir: Path, config) -> str:
    return f"{Path(run_dir).resolve().name} ({config.method})"


def rl_eval(run_dir: Path, config, model, state: dict, tasks: int | None, steps: int | None, seed: int | None,
            output: Path, dist=None, checkpoint: str = "last") -> dict[str, Any]:
    """Evaluate an RL run on fresh test tasks; write ``output`` and ``<stem>_per_task.json`` beside it.

    ``dist``: torchrun's ranks share the test tasks (see :mod:`mmaml.rl.evaluation`); rank 0 writes."""
    from mmaml.rl.builder import build_env
    from mmaml.rl.envs.registry import make_goals, reference_returns
    from mmaml.rl.evaluation import evaluate_rl

    num_tasks, seed = tasks or config.eval_tasks, config.eval_seed if seed is None else seed
    if dist is None or dist.is_main:
        print(f"mmaml: evaluating {run_dir} on {num_tasks} test goals, adapting each with "
              f"{config.eval_inner_steps if steps is None else steps} inner steps", file=sys.stderr, flush=True)
    result = evaluate_rl(model, config, build_env(config), make_goals(config.env), num_tasks, seed,
                         config.eval_inner_steps if steps is None else steps, dist)
    if dist is not None and not dist.is_main:
        return result  # rank 0 writes
    # the same test goals, one episode each: what doing nothing and a goal-knowing controller score
    result["reference_returns"] = reference_returns(config.env, result["num_tasks"], seed)
    result["iterations"] = int(state["iteration"])
    result["checkpoint"] = checkpoint
    result["method"] = config.method
    result["env"] = config.env
    result["modes"] = list(config.mode_names)
    per_task = result.pop("per_task")
    atomic_write_text(output.with_name(output.stem + "_per_task.json"),
                      json.dumps({"num_tasks": result["num_tasks"], "seed": result["seed"],
                                  "inner_steps": result["inner_steps"], **per_task}) + "\n")
    atomic_write_text(output, json.dumps(result, indent=2) + "\n")
    return result


def rl_compare(runs: Sequence[Path], loaded, num_tasks: int | None, seed: int | None, steps: int | None,
               output: Path | None, saved=None) -> dict[str, Any]:
    """Score RL runs on the same test goals; paired differences (run - first run) at every gradient step.

    ``saved``: the runs' saved evaluations (:func:`mmaml.training.saved_evaluation.load_saved_scores`),
    paired instead of evaluating again.
    """
    from mmaml.rl.builder import build_env
    from mmaml.rl.envs.registry import make_goals
    from mmaml.rl.evaluation import per_task_returns
    from mmaml.training.evaluation import mean_ci95, paired_difference

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
        line = f"{str(run)[-40:]:<40} " + "  ".join(f"{s['mean']:8.2f} ± {s['ci95']:<5.2f}"
                                                    for s in entry["returns_by_step"])
        print(line)
        if i > 0:
            diffs = [paired_difference(scores[0][k], scores[i][k], mode, distribution.modes) for k in range(steps + 1)]
            entry["difference_by_step"] = diffs
            print(f"{'  difference':<40} " + "  ".join(f"{d['mean']:+8.2f} ± {d['ci95']:<5.2f}" for d in diffs))
        result["runs"][str(run)] = entry
    if output is not None:
        atomic_write_text(output, json.dumps(result, indent=2) + "\n")
        print(f"wrote {output}")
    return result


def rl_plot(run_dirs: Sequence[Path], loaded, out_dir: Path) -> list[Path]:
    """Adaptation curves of all runs (Figure 3a-c), each run's trajectories (Figure 3d), each MuMoMAML run's t-SNE."""
    from mmaml.errors import ConfigError
    from mmaml.plotting.figure3 import plot_adaptation_curves, plot_progress, plot_return_curves, plot_trajectories
    from mmaml.plotting.tsne import plot_embedding_tsne
    from mmaml.rl.builder import build_env
    from mmaml.rl.envs.registry import make_goals
    from mmaml.rl.evaluation import adaptation_rollouts, evaluate_rl, task_embeddings

    first = loaded[0][0]
    for d, (config, _, _) in zip(run_dirs, loaded):
        if config.task != "rl" or config.env != first.env:
            raise ConfigError(f"cannot compare {d} with {run_dirs[0]}: different environments "
                              f"({getattr(config, 'env', config.task)} vs {first.env})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"mmaml: plotting {len(run_dirs)} meta-RL run(s): adapting each to its test goals to draw curves, "
          "trajectories and embeddings (about a minute a run on one CPU)", file=sys.stderr, flush=True)
    distribution = make_goals(first.env)
    results, paths = {}, []
    for d, (config, model, state) in zip(run_dirs, loaded):
        saved = Path(d) / "eval.json"
        result = json.loads(saved.read_text()) if saved.exists() else None
        if result is None or result.get("iterations") != int(state["iteration"]):
            result = evaluate_rl(model, config, build_env(config), distribution, config.eval_tasks, config.eval_seed,
                                 config.eval_inner_steps)
        results[_label(d, config)] = result
    iters = ", ".join(f"{int(s['iteration']):,}" for _, _, s in loaded)
    paths.append(plot_adaptation_curves(results, out_dir / "adaptation_curve.png",
                                        f"{first.env} ({iters} meta-iterations)"))
    curves = plot_return_curves({_label(d, c): d for d, (c, _, _) in zip(run_dirs, loaded)},
                                out_dir / "learning_curves.png", f"meta-training on {first.env}")
    if curves is not None:
        paths.append(curves)
    for d, (config, model, state) in zip(run_dirs, loaded):
        name = Path(d).resolve().name
        generator = torch.Generator().manual_seed(PLOT_SEED)
        goals, mode = distribution.sample(2 * len(distribution.modes), generator)
        model.eval()
        env = build_env(config)
        rollouts = adaptation_rollouts(model, config, env, goals, mode, config.eval_inner_steps, generator)
        title = f"{_label(d, config)}, {int(state['iteration']):,} meta-iterations"
        if distribution.goal_dim == 2:
            paths.append(plot_trajectories(rollouts, distribution, out_dir / f"trajectories_{name}.png", title))
        else:  # the half-cheetah: its x-position or speed over time against the target
            quantity = "velocity" if getattr(env, "task", "") == "speed" else "position"
            paths.append(plot_progress(rollouts, quantity, env.dt, out_dir / f"trajectories_{name}.png", title))
        if config.method == "mumomaml":
            goals, mode = distribution.sample(100 * len(distribution.modes), generator)
            embeddings = task_embeddings(model, config, env, goals, generator).cpu()
            paths.append(plot_embedding_tsne(embeddings, mode, distribution.modes, out_dir / f"tsne_{name}.png",
                                             f"t-SNE of task embeddings, {first.env}, "
                                             f"{int(state['iteration']):,} meta-iterations"))
    return paths
