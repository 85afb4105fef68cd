"""ProMP's outer step: its inner-KL penalty on the inner steps' own outputs against a second pass.

ProMP's objective (:func:`mmaml.rl.maml_ppo.promp_objective`) adds to the clipped
surrogate the KL between each inner step's sampling policy and its current one, on
that step's episodes. The inner steps compute exactly those outputs; the objective
takes them from the inner steps (``adaptation_path(..., predictions)``). The
"separate" variant, written out below, is what the step did before: a second forward
pass over every inner step's episodes for the penalty, and a second adaptation pass
for the outputs recorded at sampling time.

Both variants take the whole outer step (``ppo_step``: ``ppo_epochs`` Adam epochs)
on the very same rollouts from the very same parameters and optimizer state
(restored before each), in alternating blocks in one process, so that a busy
machine slows them alike; medians over the repeats. The parameters they end at
are compared (they agree to float rounding).

    python benchmarks/bench_promp.py [--presets rl-navigation-maml,...] [--repeats 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch

import mmaml.rl.maml_ppo as maml_ppo
from mmaml.presets import resolve
from mmaml.rl.algorithm import RLAlgorithm
from mmaml.rl.maml_trpo import surrogate
from mmaml.rl.metalearner import adaptation_path

PRESETS = "rl-navigation-maml,rl-navigation-mumomaml,rl-pointmass-4modes-mumomaml,rl-cheetah-speed-mumomaml"


def step_predictions(model, rollouts, path):
    """Each inner step's policy on its own episodes, by a second forward pass."""
    preds = []
    for (params, taus), episodes in zip(path[:-1], rollouts.steps[:-1]):
        obs, _ = episodes.flat()
        preds.append(model.learner(params, obs, taus, model.modulation_kind))
    return preds


def separate_objective(model, rollouts, settings, recorded, create_graph):
    path = adaptation_path(model, rollouts, create_graph)
    loss = maml_ppo.clipped_surrogate(model, rollouts, settings.clip, create_graph, path[-1])
    if settings.inner_kl and recorded:
        loss = loss + settings.inner_kl * maml_ppo.inner_kl(recorded, step_predictions(model, rollouts, path))
    return loss


def separate_adaptation_path(model, rollouts, create_graph, predictions=None):
    """The path without handing out the inner steps' outputs; when asked for them (the outputs at
    sampling time), a second adaptation pass and a forward pass compute them, as before."""
    path = adaptation_path(model, rollouts, create_graph)
    if predictions is not None:
        predictions.extend(step_predictions(model, rollouts, adaptation_path(model, rollouts, create_graph)))
    return path


VARIANTS = {
    "shared outputs": (maml_ppo.promp_objective, adaptation_path),
    "separate pass": (separate_objective, separate_adaptation_path),
}


def timed_step(algorithm, rollouts, state, variant):
    objective, path = VARIANTS[variant]
    maml_ppo.promp_objective, maml_ppo.adaptation_path = objective, path
    algorithm.model.load_state_dict(state["model"])
    algorithm.optimizer.load_state_dict(state["optimizer"])
    started = time.perf_counter()
    maml_ppo.ppo_step(algorithm.model, rollouts, algorithm.ppo, algorithm.optimizer)
    seconds = time.perf_counter() - started
    maml_ppo.promp_objective, maml_ppo.adaptation_path = VARIANTS["shared outputs"]
    return seconds, {k: v.detach().clone() for k, v in algorithm.model.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default=PRESETS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setups = {}
    for name in args.presets.split(","):
        config = resolve(name).validate()
        if config.outer_optimizer != "promp":
            raise SystemExit(f"{name}: outer_optimizer is {config.outer_optimizer}; this benchmark times ProMP's step")
        algorithm = RLAlgorithm(config, torch.device("cpu"), torch.Generator().manual_seed(0))
        rollouts, _ = algorithm.sample()
        state = {"model": copy.deepcopy(algorithm.model.state_dict()),
                 "optimizer": copy.deepcopy(algorithm.optimizer.state_dict())}
        for variant in VARIANTS:  # warm-up
            timed_step(algorithm, rollouts, state, variant)
        setups[name] = (algorithm, rollouts, state)
    times = {name: {variant: [] for variant in VARIANTS} for name in setups}
    ends = {}
    for _ in range(args.repeats):
        for name, (algorithm, rollouts, state) in setups.items():
            for variant in VARIANTS:
                seconds, end = timed_step(algorithm, rollouts, state, variant)
                times[name][variant].append(seconds)
                ends[name, variant] = end
    results = {}
    print(f"| preset | shared outputs s/step | separate pass s/step | speed-up | largest parameter difference |")
    print("|---|---|---|---|---|")
    for name in setups:
        a, b = (statistics.median(times[name][v]) for v in VARIANTS)
        diff = max(float((ends[name, "shared outputs"][k] - ends[name, "separate pass"][k]).abs().max())
                   for k in ends[name, "shared outputs"])
        results[name] = {"shared_outputs_s": a, "separate_pass_s": b, "speedup": b / a, "max_param_diff": diff,
                         "repeats": {v: times[name][v] for v in VARIANTS}}
        print(f"| `{name}` | {a:.3f} | {b:.3f} | {b / a:.2f}x | {diff:.1e} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
