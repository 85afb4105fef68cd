"""Point mass with momentum (MuMoMAML, NeurIPS version).

Dynamics: the state is position and velocity (observation ``[4]`` =
``(x, y, vx, vy)``). The policy's raw action is mapped linearly from
``[-10, 10]`` onto the action range ``[-0.1, 0.1]``: ``a = clip(raw, -10, 10) * 0.01``;
then ``velocity <- velocity + a`` and ``position <- position + velocity`` (the new
velocity). The reward is ``-||position - goal||`` after the move; an episode has
100 steps; the start position is ``U(-0.2, 0.2)^2`` and the start velocity
``U(-0.1, 0.1)^2``. Goals are a mode centre plus ``N(0, 1)`` per axis, with 2, 4
or 6 modes of radius 5 (see :func:`mmaml.rl.envs.goals.point_mass_goals`).

Reference controller: a PD controller that knows the goal,
``raw = KP * (goal - position) - KD * velocity`` (then clipped by the env), with
gains tuned by a grid search on the 4-mode distribution (the clip at
``|raw| = 10`` makes it close to bang-bang; returns are flat for ``KD / KP``
between 4 and 5). Undiscounted episode returns with 4 modes: zero action about
-800, the PD controller about -48 (the paper's simple PD scored about -101;
softer gains, e.g. ``(1, 10)``, score about -111).

Shapes: the batched env works on goals ``[T, 2]``, state ``[T, E, 4]``, raw
actions ``[T, E, 2]``, rewards ``[T, E]``; the gymnasium env on numpy float64
state ``[4]`` with float32 observations.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from mmaml.rl.envs.base import BatchedEnv, GoalReachingEnv
from mmaml.rl.envs.goals import point_mass_goals

RAW_ACTION_LIMIT = 10.0
ACTION_SCALE = 0.01  # raw [-10, 10] -> acceleration [-0.1, 0.1]
START_POSITION_LIMIT = 0.2
START_VELOCITY_LIMIT = 0.1
HORIZON = 100
PD_GAINS = (10.0, 40.0)  # (KP, KD) of the reference controller, in raw-action units


class BatchedPointMass(BatchedEnv):
    """Point mass for ``T`` tasks x ``E`` episodes; state = observation = ``[T, E, 4]`` (position, velocity).

    Args:
        gains: ``(KP, KD)`` of the reference PD controller.
    """

    observation_dim = 4
    action_dim = 2
    state_dim = 4
    horizon = HORIZON

    def __init__(self, gains: tuple[float, float] = PD_GAINS) -> None:
        super().__init__()
        self.kp, self.kd = (float(g) for g in gains)

    def _initial_state(self, num_tasks: int, episodes: int, generator: torch.Generator | None) -> Tensor:
        limits = torch.tensor([START_POSITION_LIMIT] * 2 + [START_VELOCITY_LIMIT] * 2)
        u = torch.rand(num_tasks, episodes, self.state_dim, generator=generator)
        return (2.0 * u - 1.0) * limits

    def _transition(self, state: Tensor, actions: Tensor) -> Tensor:
        accel = actions.clamp(-RAW_ACTION_LIMIT, RAW_ACTION_LIMIT) * ACTION_SCALE
        velocity = state[..., 2:] + accel
        position = state[..., :2] + velocity
        return torch.cat([position, velocity], dim=-1)

    @property
    def positions(self) -> Tensor:
        return self.state[..., :2]

    def oracle_action(self) -> Tensor:
        """PD controller ``KP * (goal - position) - KD * velocity``, raw ``[T, E, 2]``."""
        error = self.goals[:, None, :] - self.state[..., :2]
        return self.kp * error - self.kd * self.state[..., 2:]


class PointMassEnv(GoalReachingEnv):
    """Gymnasium point mass with momentum; goals from the ``modes``-mode distribution (2, 4 or 6).

    Observation: ``Box(-inf, inf, (4,), float32)`` (position, velocity); action: raw
    ``Box(-10, 10, (2,))``, values outside are clipped, then scaled by 0.01.
    """

    state_dim = 4

    def __init__(self, modes: int = 4, render_mode: str | None = None) -> None:
        super().__init__(point_mass_goals(modes), render_mode)
        self.num_modes = modes
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        self.action_space = spaces.Box(-RAW_ACTION_LIMIT, RAW_ACTION_LIMIT, shape=(2,), dtype=np.float32)

    def _start_state(self, rng: np.random.Generator) -> np.ndarray:
        position = rng.uniform(-START_POSITION_LIMIT, START_POSITION_LIMIT, size=2)
        velocity = rng.uniform(-START_VELOCITY_LIMIT, START_VELOCITY_LIMIT, size=2)
        return np.concatenate([position, velocity])

    def _move(self, state: np.ndarray, action: np.ndarray) -> np.ndarray:
        accel = np.clip(action, -RAW_ACTION_LIMIT, RAW_ACTION_LIMIT) * ACTION_SCALE
        velocity = state[2:] + accel
        position = state[:2] + velocity
        return np.concatenate([position, velocity])
