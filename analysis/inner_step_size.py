"""How far one inner gradient step moves each learner parameter of trained regression models.

For each run folder given, the model is loaded, modulated and adapted with one inner
step on ``--tasks`` fresh test tasks of its modes (a fixed seed, as many per mode), and
for every learner parameter prints the mean over tasks of ``|theta_1 - theta_0|`` (the
step), ``|theta_0|`` and their ratio. Used to read why the 3-mode softmax model's five
gradient steps change its predictions so little (docs/notes/regression-variants.md, the discussion):
a softmax over a layer's units scales each by about 1/units, which the learner's weights
absorb by growing, while the inner steps on them shrink.

    python analysis/inner_step_size.py RUN [RUN ...] [--tasks 1002]
"""

from __future__ import annotations

import argparse

import torch

import mmaml
from mmaml.tasks.regression import RegressionTasks


def step_sizes(run: str, num_tasks: int, seed: int = 7) -> dict[str, tuple[float, float]]:
    """``{parameter: (mean step norm over tasks, norm of the meta-parameter)}`` after one inner step."""
    model = mmaml.load(run)
    tasks = RegressionTasks(tuple(model.config.modes)).sample(num_tasks, torch.Generator().manual_seed(seed))
    model.eval()
    with torch.no_grad():  # one inner step, as evaluation takes it
        theta0 = model.learner.meta_parameters()
        theta1 = model.run_from(tasks, model.initial_parameters(tasks), steps=1, create_graph=False).adapted_params
        return {name: (float((theta1[name] - p).flatten(1).norm(dim=1).mean()), float(p.norm()))
                for name, p in theta0.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--tasks", type=int, default=1002)
    args = parser.parse_args()
    for run in args.runs:
        print(run)
        for name, (step, norm) in step_sizes(run, args.tasks).items():
            print(f"  {name:24s} step {step:.5f}  |theta| {norm:8.3f}  ratio {step / norm:.2e}")


if __name__ == "__main__":
    main()
