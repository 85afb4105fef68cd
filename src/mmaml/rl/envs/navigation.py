"""2D navigation (MAML, Finn et al. 2017) and its bimodal variant (MuMoMAML).

Dynamics: a point agent starts at the origin (no randomness); the observation is
its position ``[2]``; the action is a velocity, clipped elementwise to
``[-0.1, 0.1]``; ``position <- position + clipped action``; the reward is
``-||position - goal||`` (Euclidean, after the move); an episode has 100 steps.

Goals:

* unimodal (MAML): ``U[-0.5, 0.5]^2``. Zero action scores about -38 per episode
  (undiscounted); the greedy goal-knowing controller about -0.5.
* bimodal (MuMoMAML's environment; its parameters were never published, so these
  are our choice): an equal-weight mixture of two Gaussians centred at (-1, 0)
  "left" and (+1, 0) "right", std 0.2 per axis. One cluster lies on each side of
  the start, 2 units apart (each reachable in about 10 steps at top speed), so
  that no single initialisation suits both; the spread is wide enough that the
  gradient steps still have to find the goal within a mode.

Shapes: the batched env works on goals ``[T, 2]``, state = positions ``[T, E, 2]``,
actions ``[T, E, 2]``, rewards ``[T, E]``; the gymnasium env on numpy float64
position ``[2]`` with float32 observations.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from mmaml.rl.envs.base import BatchedEnv, GoalReachingEnv
from mmaml.rl.envs.goals import GoalDistribution, bimodal_navigation_goals, navigation_goals

ACTION_LIMIT = 0.1
HORIZON = 100


class BatchedNavigation2D(BatchedEnv):
    """2D navigation for ``T`` tasks x ``E`` episodes; state = observation = position ``[T, E, 2]``."""

    observation_dim = 2
    action_dim = 2
    state_dim = 2
    horizon = HORIZON
    normalized_action = (1.0, ACTION_LIMIT)  # the MAML reference's policy range [-1, 1] onto the velocity clip

    def _initial_state(self, num_tasks: int, episodes: int, generator: torch.Generator | None) -> Tensor:
        return torch.zeros(num_tasks, episodes, self.state_dim)

    def _transition(self, state: Tensor, actions: Tensor) -> Tensor:
        return state + actions.clamp(-ACTION_LIMIT, ACTION_LIMIT)

    @property
    def positions(self) -> Tensor:
        return self.state

    def oracle_action(self) -> Tensor:
        """Greedy controller: head straight for the goal at top speed (per axis), ``[T, E, 2]``."""
        return (self.goals[:, None, :] - self.state).clamp(-ACTION_LIMIT, ACTION_LIMIT)


class Navigation2DEnv(GoalReachingEnv):
    """Gymnasium 2D navigation; goals from ``goals`` (default ``U[-0.5, 0.5]^2``).

    Observation: position ``Box(-inf, inf, (2,), float32)``; action: velocity
    ``Box(-0.1, 0.1, (2,))``, values outside are clipped.
    """

    state_dim = 2

    def __init__(self, goals: GoalDistribution | None = None, render_mode: str | None = None) -> None:
        super().__init__(navigation_goals() if goals is None else goals, render_mode)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-ACTION_LIMIT, ACTION_LIMIT, shape=(2,), dtype=np.float32)

    def _start_state(self, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(2, dtype=np.float64)

    def _move(self, state: np.ndarray, action: np.ndarray) -> np.ndarray:
        return state + np.clip(action, -ACTION_LIMIT, ACTION_LIMIT)


class BimodalNavigation2DEnv(Navigation2DEnv):
    """Gymnasium 2D navigation with the bimodal goals (left/right Gaussians, std 0.2)."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(bimodal_navigation_goals(), render_mode)
