"""Environment names used by configs, their gymnasium ids, and reference returns.

=======================  ================================  =========================
name                     gymnasium id                      goals
=======================  ================================  =========================
``navigation``           ``mmaml/Navigation2D-v0``         ``U[-0.5, 0.5]^2``
``navigation-bimodal``   ``mmaml/BimodalNavigation2D-v0``  left/right Gaussians
``pointmass-2modes``     ``mmaml/PointMass2Modes-v0``      2 modes of radius 5
``pointmass-4modes``     ``mmaml/PointMass4Modes-v0``      4 corners (+-5, +-5)
``pointmass-6modes``     ``mmaml/PointMass6Modes-v0``      hexagon of radius 5
``cheetah-speed``        ``mmaml/HalfCheetahSpeed-v0``     -1 or 2 m/s
``cheetah-location``     ``mmaml/HalfCheetahLocation-v0``  x = -3 or 3 m
``cheetah-location-``    ``mmaml/HalfCheetahLocation``     x = 3 m only (a
``ahead``                ``Ahead-v0``                      unimodal anchor)
=======================  ================================  =========================

The half-cheetah modules (MuJoCo) are imported only when a half-cheetah env is made.

:func:`reference_returns` scores two reference controllers on the batched env,
one episode per task: the zero action and the goal-knowing controller of the env
(``BatchedEnv.oracle_action``), as mean undiscounted episode return and its 95%
confidence half-width ``1.96 * std / sqrt(n)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import gymnasium
import torch
from torch import Tensor

from mmaml.rl.envs.base import BatchedEnv
from mmaml.rl.envs.goals import (
    GoalDistribution,
    bimodal_navigation_goals,
    cheetah_location_goals,
    cheetah_speed_goals,
    navigation_goals,
    point_mass_goals,
)
from mmaml.rl.envs.navigation import HORIZON as NAVIGATION_HORIZON
from mmaml.rl.envs.navigation import BatchedNavigation2D
from mmaml.rl.envs.point_mass import HORIZON as POINT_MASS_HORIZON
from mmaml.rl.envs.point_mass import BatchedPointMass

CHEETAH_HORIZON = 100  # mmaml.rl.envs.half_cheetah.HORIZON, without importing MuJoCo here


@dataclass(frozen=True)
class EnvSpec:
    """One environment: config name, gymnasium id, and factories of its goals and batched env.

    ``mujoco`` envs' batched factory takes the number of physics threads.
    """

    name: str
    gym_id: str
    goals: Callable[[], GoalDistribution]
    batched: Callable[..., BatchedEnv]
    mujoco: bool = False


def _point_mass_spec(modes: int) -> EnvSpec:
    return EnvSpec(
        name=f"pointmass-{modes}modes",
        gym_id=f"mmaml/PointMass{modes}Modes-v0",
        goals=lambda: point_mass_goals(modes),
        batched=BatchedPointMass,
    )


ENVIRONMENTS: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in (
        EnvSpec("navigation", "mmaml/Navigation2D-v0", navigation_goals, BatchedNavigation2D),
        EnvSpec(
            "navigation-bimodal", "mmaml/BimodalNavigation2D-v0", bimodal_navigation_goals, BatchedNavigation2D
        ),
        _point_mass_spec(2),
        _point_mass_spec(4),
        _point_mass_spec(6),
        EnvSpec("cheetah-speed", "mmaml/HalfCheetahSpeed-v0", cheetah_speed_goals,
                lambda threads=1: _batched_cheetah("speed", threads), mujoco=True),
        EnvSpec("cheetah-location", "mmaml/HalfCheetahLocation-v0", cheetah_location_goals,
                lambda threads=1: _batched_cheetah("location", threads), mujoco=True),
        EnvSpec("cheetah-location-ahead", "mmaml/HalfCheetahLocationAhead-v0",
                lambda: cheetah_location_goals(("ahead",)),
                lambda threads=1: _batched_cheetah("location", threads), mujoco=True),
    )
}

_ENTRY_POINTS: dict[str, tuple[str, dict, int]] = {
    "navigation": ("mmaml.rl.envs.navigation:Navigation2DEnv", {}, NAVIGATION_HORIZON),
    "navigation-bimodal": ("mmaml.rl.envs.navigation:BimodalNavigation2DEnv", {}, NAVIGATION_HORIZON),
    "pointmass-2modes": ("mmaml.rl.envs.point_mass:PointMassEnv", {"modes": 2}, POINT_MASS_HORIZON),
    "pointmass-4modes": ("mmaml.rl.envs.point_mass:PointMassEnv", {"modes": 4}, POINT_MASS_HORIZON),
    "pointmass-6modes": ("mmaml.rl.envs.point_mass:PointMassEnv", {"modes": 6}, POINT_MASS_HORIZON),
    "cheetah-speed": ("mmaml.rl.envs.half_cheetah:HalfCheetahTaskEnv", {"task": "speed"}, CHEETAH_HORIZON),
    "cheetah-location": ("mmaml.rl.envs.half_cheetah:HalfCheetahTaskEnv", {"task": "location"}, CHEETAH_HORIZON),
    "cheetah-location-ahead": ("mmaml.rl.envs.half_cheetah:HalfCheetahTaskEnv",
                               {"task": "location", "modes": ("ahead",)}, CHEETAH_HORIZON),
}


def _batched_cheetah(task: str, threads: int) -> BatchedEnv:
    # imported here: it loads MuJoCo and gymnasium's MuJoCo envs, which only half-cheetah runs need
    from mmaml.rl.envs.half_cheetah import BatchedHalfCheetah

    return BatchedHalfCheetah(task, threads)


def register_envs() -> None:
    """Register every environment with gymnasium (idempotent)."""
    for name, (entry_point, kwargs, horizon) in _ENTRY_POINTS.items():
        gym_id = ENVIRONMENTS[name].gym_id
        if gym_id in gymnasium.registry:
            continue
        gymnasium.register(id=gym_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=horizon)


def get_spec(name: str) -> EnvSpec:
    """The :class:`EnvSpec` of ``name``; an unknown name raises ``ValueError`` listing the valid ones."""
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        raise ValueError(f"unknown environment {name!r}; choose one of {sorted(ENVIRONMENTS)}") from None


def make_batched(name: str, sim_threads: int = 1, normalize_actions: bool = False) -> BatchedEnv:
    """A fresh batched env of ``name``; ``sim_threads`` physics threads for the MuJoCo envs.

    ``normalize_actions``: the policy acts in the env's normalised range (see
    :attr:`BatchedEnv.normalized_action`; the point mass's actions are normalised already).
    """
    spec = get_spec(name)
    env = spec.batched(sim_threads) if spec.mujoco else spec.batched()
    env.normalize_actions = normalize_actions
    return env


def make_goals(name: str) -> GoalDistribution:
    """The goal distribution of ``name``."""
    return get_spec(name).goals()


def _mean_ci(returns: Tensor) -> dict[str, float]:
    """Mean and 95% half-width ``1.96 * std / sqrt(n)`` of returns ``[n]``."""
    n = returns.numel()
    std = returns.std().item() if n > 1 else 0.0
    return {"mean": returns.mean().item(), "ci95": 1.96 * std / math.sqrt(n)}


def _episode_returns(env: BatchedEnv, goals: Tensor, start: Tensor, controller: str) -> Tensor:
    """Undiscounted returns ``[T]`` of one episode per task from start states ``[T, 1, S]`` (float64)."""
    env.reset(goals, 1, initial_state=start)
    total = torch.zeros(goals.shape[0], 1, dtype=torch.float64)
    for _ in range(env.horizon):
        if controller == "oracle":
            actions = env.oracle_action()
        else:
            actions = torch.zeros(goals.shape[0], 1, env.action_dim)
        _, rewards = env.step(actions)
        total += rewards.to(torch.float64)
    return total[:, 0]


def reference_returns(name: str, num_tasks: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Zero-action and oracle returns of ``name`` over ``num_tasks`` tasks, one episode each.

    Both controllers see the same goals and start states (drawn from ``seed``).
    Environments without a goal-knowing controller (the half-cheetah) score the
    zero action only.

    Returns:
        ``{"zero_action": {"mean", "ci95"}, "oracle": {"mean", "ci95"}}`` (no ``"oracle"``
        where the env has none).
    """
    spec = get_spec(name)
    generator = torch.Generator().manual_seed(seed)
    goals, _ = spec.goals().sample(num_tasks, generator)
    env = spec.batched()
    env.reset(goals, 1, generator=generator)
    start = env.initial_state_copy()
    controllers = ("zero_action", "oracle") if env.has_oracle else ("zero_action",)
    return {controller: _mean_ci(_episode_returns(env, goals, start, controller)) for controller in controllers}
