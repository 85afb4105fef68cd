"""The figures of meta-RL runs (``mmaml plot`` on RL run folders): adaptation curves of all runs (Figure 3a-c),
learning curves, each run's trajectories (Figure 3d) and each MuMoMAML run's t-SNE of task embeddings."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

import torch

from mmaml.errors import ConfigError
from mmaml.plotting.figure3 import plot_adaptation_curves, plot_progress, plot_return_curves, plot_trajectories
from mmaml.plotting.tsne import plot_embedding_tsne
from mmaml.rl.builder import build_env
from mmaml.rl.envs.registry import make_goals
from mmaml.rl.evaluation import adaptation_rollouts, evaluate_rl, task_embeddings

PLOT_SEED = 11


def run_label(run_dir: Path, config) -> str:
    return f"{Path(run_dir).resolve().name} ({config.method})"


def plot_rl_runs(run_dirs: Sequence[Path], loaded, out_dir: Path) -> list[Path]:
    """The figures of RL runs of one environment (``loaded``: ``load_run`` of each) in ``out_dir``."""
    first = loaded[0][0]
    for d, (config, _, _) in zip(run_dirs, loaded):
        if config.env != first.env:
            raise ConfigError(f"cannot compare {d} with {run_dirs[0]}: different environments "
                              f"({config.env} vs {first.env})")
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
        results[run_label(d, config)] = result
    iters = ", ".join(f"{int(s['iteration']):,}" for _, _, s in loaded)
    paths.append(plot_adaptation_curves(results, out_dir / "adaptation_curve.png",
                                        f"{first.env} ({iters} meta-iterations)"))
    curves = plot_return_curves({run_label(d, c): d for d, (c, _, _) in zip(run_dirs, loaded)},
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
        title = f"{run_label(d, config)}, {int(state['iteration']):,} meta-iterations"
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
