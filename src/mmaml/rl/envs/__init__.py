"""Meta-RL environments: 2D navigation (unimodal and bimodal) and the point mass with momentum.

Each environment comes twice: a gymnasium ``Env`` (numpy float64, one episode,
the reference) and a :class:`BatchedEnv` stepping ``T`` tasks x ``E`` episodes as
float32 tensors (observations ``[T, E, O]``, actions ``[T, E, A]``, rewards
``[T, E]``). Tasks are goals ``[T, 2]`` drawn from a :class:`GoalDistribution`.
Importing this package registers the gymnasium ids (``mmaml/Navigation2D-v0``,
...; see :mod:`mmaml.rl.envs.registry`).
"""

from __future__ import annotations

from mmaml.rl.envs.base import BatchedEnv, GoalReachingEnv
from mmaml.rl.envs.goals import (
    GaussianMixtureGoals,
    GoalDistribution,
    UniformGoals,
    bimodal_navigation_goals,
    navigation_goals,
    point_mass_goals,
)
from mmaml.rl.envs.navigation import BatchedNavigation2D, BimodalNavigation2DEnv, Navigation2DEnv
from mmaml.rl.envs.point_mass import BatchedPointMass, PointMassEnv
from mmaml.rl.envs.registry import (
    ENVIRONMENTS,
    EnvSpec,
    get_spec,
    make_batched,
    make_goals,
    reference_returns,
    register_envs,
)

register_envs()

__all__ = [
    "BatchedEnv",
    "GoalReachingEnv",
    "GoalDistribution",
    "UniformGoals",
    "GaussianMixtureGoals",
    "navigation_goals",
    "bimodal_navigation_goals",
    "point_mass_goals",
    "BatchedNavigation2D",
    "Navigation2DEnv",
    "BimodalNavigation2DEnv",
    "BatchedPointMass",
    "PointMassEnv",
    "EnvSpec",
    "ENVIRONMENTS",
    "get_spec",
    "make_batched",
    "make_goals",
    "reference_returns",
    "register_envs",
]
