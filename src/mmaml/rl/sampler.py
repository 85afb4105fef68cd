"""The batched sampler: every episode of every task of a meta-batch stepped at once.

One call of the policy per time step serves all ``T x E`` episodes (each task
with its own, possibly adapted and modulated, parameters); the environment is
a :class:`~mmaml.rl.envs.base.BatchedEnv` stepping all of them as tensors. There
is no Python loop over tasks or episodes, only over the ``H`` time steps.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from mmaml.rl.baseline import fit_linear_baseline
from mmaml.rl.envs.base import BatchedEnv
from mmaml.rl.episodes import Episodes
from mmaml.rl.policy import log_prob, sample_actions
from mmaml.rl.returns import discounted_returns, gae, normalize_per_task
from mmaml.rl.task_generators import TaskGenerators, randn_tasks

PolicyFn = Callable[[Tensor], Tensor]  # observations [T, E, O] -> distribution parameters [T, E, 2A]


def sample_episodes(
    env: BatchedEnv,
    policy: PolicyFn,
    goals: Tensor,
    episodes: int,
    generator: torch.Generator | TaskGenerators,
    discount: float = 0.99,
    gae_lambda: float = 1.0,
    deterministic: bool = False,
) -> Episodes:
    """Run ``episodes`` episodes of each task's policy in its task and fit the advantages.

    Args:
        env: the batched environment.
        policy: ``observations [T, E, O] -> [T, E, 2A]`` (mean, log-std) for each task.
        goals: ``[T, goal_dim]`` the tasks.
        episodes: episodes per task ``E``.
        generator: a CPU generator, the source of start states and action noise, or one
            per task (:class:`~mmaml.rl.task_generators.TaskGenerators`).
        discount, gae_lambda: for the advantages (linear feature baseline + GAE,
            normalised per task).
        deterministic: act with the mean (no exploration noise).

    Returns:
        :class:`Episodes` with advantages, on the device of ``goals``.
    """
    t = goals.shape[0]
    device = goals.device
    with torch.no_grad():
        obs = env.reset(goals, episodes, generator)
        h, a_dim = env.horizon, env.action_dim
        noise = randn_tasks(generator, (h, t, episodes, a_dim), task_dim=1).to(device)
        observations, actions, rewards, log_probs = [], [], [], []
        positions = [env.positions.clone()]
        for step in range(h):
            pred = policy(obs)
            action = sample_actions(pred, torch.zeros_like(noise[step]) if deterministic else noise[step])
            observations.append(obs)
            actions.append(action)
            log_probs.append(log_prob(pred, action))
            obs, reward = env.step(action)
            rewards.append(reward)
            positions.append(env.positions.clone())
        result = Episodes(
            observations=torch.stack(observations, dim=2),
            actions=torch.stack(actions, dim=2),
            rewards=torch.stack(rewards, dim=2),
            log_probs=torch.stack(log_probs, dim=2),
            positions=torch.stack(positions, dim=2),
        )
        result.advantages = advantages(result, discount, gae_lambda)
    return result


def advantages(episodes: Episodes, discount: float, gae_lambda: float) -> Tensor:
    """Normalised GAE advantages with a per-task linear feature baseline: ``[T, E, H]``."""
    returns = discounted_returns(episodes.rewards, discount)
    values = fit_linear_baseline(episodes.observations, returns)
    return normalize_per_task(gae(episodes.rewards, values, discount, gae_lambda))
