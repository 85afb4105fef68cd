"""Evaluation of a meta-RL run: the average return after modulation and after each gradient step.

Every task of the test set is adapted exactly as in training (unmodulated
episodes -> tau for MuMoMAML; then an inner policy-gradient step on each
batch of fresh episodes), ``steps`` times; the return of the episodes sampled
before any step and after each step is recorded per task. The goals depend
only on the seed, so runs evaluated with the same seed and environment are
scored on the same tasks and can be compared task by task.

Where the episodes' randomness comes from follows the run's ``task_rng``:
``stream`` draws every chunk's start states and exploration noise from one
generator in turn (so only a single process can reproduce it, and under
torchrun rank 0 evaluates alone); ``per_iteration`` gives each test task a
generator of its own, keyed by (seed, task index), so the tasks can be scored
in any chunks on any number of ranks with the same result (to float
tolerance): under torchrun every rank scores every ``world``-th chunk and the
scores are gathered in task order.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from mmaml.rl.config import RLConfig
from mmaml.rl.envs.base import BatchedEnv
from mmaml.rl.episodes import Episodes
from mmaml.rl.envs.goals import GoalDistribution
from mmaml.rl.metalearner import PolicyMetaLearner, Rollouts, rollout_adaptation
from mmaml.rl.task_generators import TaskGenerators
from mmaml.engine.distributed import SINGLE, Distributed
from mmaml.engine.evaluation import score_in_chunks
from mmaml.engine.mode_identification import mode_identification
from mmaml.engine.statistics import balanced_count, mean_ci95
from mmaml.rl.sampler import sample_episodes


def adaptation_rollouts(model: PolicyMetaLearner, config: RLConfig, env: BatchedEnv, goals: Tensor, mode: Tensor,
                        steps: int, generator: torch.Generator) -> Rollouts:
    """The whole adaptation protocol (``steps`` inner steps) for the tasks ``goals [T, 2]``."""
    device = next(model.parameters()).device
    return rollout_adaptation(model, env, goals.to(device), mode, config.episodes_per_task, steps, generator,
                              config.encoder_episodes, config.discount, config.gae_lambda)


def encoder_inputs(model: PolicyMetaLearner, config: RLConfig, env: BatchedEnv, goals: Tensor,
                   generator: torch.Generator | TaskGenerators) -> Episodes:
    """What the task encoder reads for the tasks ``goals [T, G]``: episodes of the unmodulated policy,
    ``encoder_episodes`` of each task (``episodes_per_task`` in the authors' flow, whose step-0 episodes
    the encoder reads), ``[T, E, H, ...]``."""
    device = next(model.parameters()).device
    theta = {k: v.detach() for k, v in model.learner.meta_parameters().items()}
    count = config.episodes_per_task if config.encoder_flow == "authors" else config.encoder_episodes
    with torch.no_grad():
        return sample_episodes(env, model.policy(theta, None), goals.to(device), count,
                               generator, config.discount, config.gae_lambda)


def task_embeddings(model: PolicyMetaLearner, config: RLConfig, env: BatchedEnv, goals: Tensor,
                    generator: torch.Generator | TaskGenerators) -> Tensor:
    """MuMoMAML's task embeddings ``[T, D]`` of the tasks ``goals [T, G]``, from :func:`encoder_inputs`
    (what the modulation network reads; nothing else is sampled)."""
    if not model.modulated:
        raise ValueError("only a MuMoMAML model has task embeddings")
    episodes = encoder_inputs(model, config, env, goals, generator)
    with torch.no_grad():
        return model.modulation(episodes)[1]


def sample_test_goals(distribution: GoalDistribution, num_tasks: int, seed: int) -> tuple[Tensor, Tensor, torch.Generator]:
    """``(goals [n, 2], mode [n], generator)``: the test tasks of ``seed`` and the generator that samples their episodes."""
    generator = torch.Generator().manual_seed(seed)
    goals, mode = distribution.sample(num_tasks, generator)
    return goals, mode, generator


def splits_across_ranks(config: RLConfig) -> bool:
    """Whether this run's evaluation can be shared among torchrun's ranks (``task_rng: per_iteration``)."""
    return config.task_rng == "per_iteration"


def _chunked(num_tasks: int, chunk: int, generator: torch.Generator, per_task: tuple[int, str] | None,
             dist: Distributed, score: Callable[[slice, torch.Generator | TaskGenerators], Tensor]) -> Tensor:
    """``score(tasks, generator)`` over the chunks of ``chunk`` tasks, concatenated along the last dimension.

    ``per_task = (seed, stream)``: each task's randomness from its own generator of (seed, stream,
    task index), and every ``world``-th chunk on this rank (the results gathered in task order on
    every rank). ``None``: ``generator`` drawn chunk after chunk, in this process alone.
    """
    starts = range(0, num_tasks, chunk)

    def tasks(number: int) -> slice:
        return slice(starts[number], min(num_tasks, starts[number] + chunk))

    def run(number: int, these: slice) -> tuple[Tensor]:
        own = generator if per_task is None else TaskGenerators.for_test_tasks(*per_task, range(these.start, these.stop))
        return (score(these, own).movedim(-1, 0),)  # tasks first, as the driver gathers them

    (parts,) = score_in_chunks(len(starts), 1, tasks, run, dist if per_task is not None else SINGLE)
    return torch.cat(parts).movedim(0, -1)


def per_task_returns(model: PolicyMetaLearner, config: RLConfig, env: BatchedEnv, distribution: GoalDistribution,
                     num_tasks: int, seed: int, steps: int, dist: Distributed | None = None) -> tuple[Tensor, Tensor]:
    """``(returns [steps + 1, n], mode [n])``: each test task's average return after 0..steps inner steps.

    Tasks are adapted ``meta_batch_size`` at a time (chunks in task order); ``n`` is
    ``num_tasks`` rounded up to a multiple of the number of modes (as many tasks per mode).
    ``dist`` shares the chunks among torchrun's ranks where the run allows it
    (:func:`splits_across_ranks`); every rank gets all the returns.
    """
    num_tasks = balanced_count(num_tasks, len(distribution.modes))
    goals, mode, generator = sample_test_goals(distribution, num_tasks, seed)  # stream runs go on drawing from it
    per_task = (seed, "returns") if splits_across_ranks(config) else None
    was_training = model.training
    model.eval()
    try:
        returns = _chunked(num_tasks, config.meta_batch_size, generator, per_task, SINGLE if dist is None else dist,
                           lambda tasks, g: adaptation_rollouts(model, config, env, goals[tasks], mode[tasks], steps,
                                                                g).returns_by_step().cpu())
    finally:
        model.train(was_training)
    return returns, mode


def embed_test_tasks(model: PolicyMetaLearner, config: RLConfig, env: BatchedEnv, distribution: GoalDistribution,
                    num_tasks: int, seed: int, dist: Distributed | None = None) -> tuple[Tensor, Tensor]:
    """``(embeddings [n, D], mode [n])`` of the test goals of ``seed`` (``n`` as in :func:`per_task_returns`),
    each from fresh unmodulated episodes; shared among ranks as :func:`per_task_returns` is."""
    num_tasks = balanced_count(num_tasks, len(distribution.modes))
    goals, mode, _ = sample_test_goals(distribution, num_tasks, seed)
    per_task = (seed, "embeddings") if splits_across_ranks(config) else None
    embedding = _chunked(num_tasks, config.meta_batch_size, torch.Generator().manual_seed(seed + 1), per_task,
                         SINGLE if dist is None else dist,
                         lambda tasks, g: task_embeddings(model, config, env, goals[tasks], g).cpu().T)
    return embedding.T, mode


def evaluate_rl(model: PolicyMetaLearner, config: RLConfig, env: BatchedEnv, distribution: GoalDistribution,
                num_tasks: int, seed: int, steps: int, dist: Distributed | None = None) -> dict[str, Any]:
    """Average return by gradient step, overall and per mode, with 95% intervals.

    Keys: ``returns_by_step`` (a list of ``{"mean", "ci95"}``, index = gradient
    steps; index 0 is after modulation for MuMoMAML, the initial policy for
    MAML), ``per_mode`` (``{name: {"num_tasks", "returns_by_step"}}``) and
    ``per_task`` (``{"mode", "returns_by_step"}``, for paired comparisons); a MuMoMAML
    model on several modes also gets ``mode_identification`` from the embeddings of the
    same test goals (see :mod:`mmaml.engine.mode_identification`). ``dist``: as in
    :func:`per_task_returns` (every rank gets the whole result).
    """
    returns, mode = per_task_returns(model, config, env, distribution, num_tasks, seed, steps, dist)
    num_tasks = len(mode)  # rounded up to a multiple of the number of modes
    result: dict[str, Any] = {
        "num_tasks": num_tasks,
        "seed": seed,
        "inner_steps": steps,
        "metric": "return",
        "episodes_per_task": config.episodes_per_task,
        "returns_by_step": [mean_ci95(r) for r in returns],
        "per_mode": {},
    }
    for m, name in enumerate(distribution.modes):
        idx = mode == m
        result["per_mode"][name] = {"num_tasks": int(idx.sum()),
                                    "returns_by_step": [mean_ci95(r[idx]) for r in returns]}
    if model.modulated and len(distribution.modes) > 1 and num_tasks >= 4:
        # the embeddings of the same test goals, from fresh unmodulated episodes (their own generator)
        embedding, _ = embed_test_tasks(model, config, env, distribution, num_tasks, seed, dist)
        result["mode_identification"] = mode_identification(embedding, mode, list(distribution.modes))
    result["per_task"] = {"mode": mode.tolist(), "returns_by_step": returns.double().tolist()}
    return result


def format_returns_table(results: dict[str, dict[str, Any]]) -> str:
    """A text table of ``{name: evaluate_rl(...)}``: one row per run and mode, one column per gradient step."""
    steps = max(len(r["returns_by_step"]) for r in results.values())
    header = f"{'run':<28} {'mode':<14} " + " ".join(f"{'step ' + str(k) if k else 'step 0 (init)':>20}"
                                                     for k in range(steps))
    lines = [header + "   (average return, mean ± 95% interval)"]
    for name, r in results.items():
        for mode, v in [("all", r)] + list(r["per_mode"].items()):
            cells = " ".join(f"{s['mean']:>11.2f} ± {s['ci95']:<6.2f}" for s in v["returns_by_step"])
            lines.append(f"{name:<28} {mode:<14} {cells}")
            name = ""
    return "\n".join(lines)
