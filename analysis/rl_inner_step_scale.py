"""The return of trained meta-RL runs after 0..S inner steps when their inner step size is scaled, on the
validation goals (``validation_seed``; never the test goals).

Used to read why the return falls after a second inner step and rises after a third in 2D navigation with
normalised actions (docs/results/rl.md, the protocol matrix): runs trained with one inner step of
``inner_lr`` overshoot with a second step of the same size; a smaller step makes the later steps improve.

    python analysis/rl_inner_step_scale.py RUN [RUN ...] [--checkpoint best|last] [--tasks 80] [--steps 3]
        [--scales 1,0.5,0.25]
"""

from __future__ import annotations

import argparse

import torch

from mmaml.rl.builder import build_env
from mmaml.rl.envs.registry import make_goals
from mmaml.rl.evaluation import per_task_returns
from mmaml.runs import load_run


def returns_by_scale(run: str, checkpoint: str, tasks: int, steps: int, scales: list[float]) -> dict[float, list[float]]:
    """``{scale: [mean return after 0..steps inner steps]}`` on the run's validation goals."""
    config, model, _ = load_run(run, checkpoint=checkpoint)
    base, out = model.inner_lr, {}
    for scale in scales:
        model.inner_lr = base * scale
        returns, _ = per_task_returns(model, config, build_env(config), make_goals(config.env), tasks,
                                      config.validation_seed, steps)
        out[scale] = returns.double().mean(1).tolist()
    model.inner_lr = base
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument("--tasks", type=int, default=80)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--scales", default="1,0.5,0.25")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scales = [float(s) for s in args.scales.split(",")]
    for run in args.runs:
        for scale, means in returns_by_scale(run, args.checkpoint, args.tasks, args.steps, scales).items():
            print(f"{run} ({args.checkpoint}), inner step x{scale:g}: " + " ".join(f"{m:.1f}" for m in means),
                  flush=True)


if __name__ == "__main__":
    main()
