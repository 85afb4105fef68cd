"""Batched tensor environments: ``T`` tasks x ``E`` episodes stepped together.

Shapes (float32, on the device of the goals):

* goals ``[T, G]`` (``G = goal_dim``: 2 for the 2D envs, 1 for the half-cheetah);
* state ``[T, E, S]`` (``S = state_dim``), observations ``[T, E, O]``;
* actions ``[T, E, A]`` (raw policy outputs; the environment clips or maps them);
* rewards ``[T, E]``.

Every step is one tensor operation over all tasks and episodes. The number of
steps taken is tracked; stepping past ``horizon`` (or before ``reset``) raises.

:class:`GoalReachingEnv` is the common part of the single-episode gymnasium
environments, written in plain numpy float64 (state ``[S]``, goal ``[2]``,
observation ``[O]`` float32): they are the reference the batched ones are tested
against, and share no code with them.
"""

from __future__ import annotations

import abc
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from mmaml.rl.envs.goals import GoalDistribution
from mmaml.rl.task_generators import TaskGenerators


class BatchedEnv(abc.ABC):
    """T tasks x E episodes of one environment stepped together as tensors (float32, on goals.device).

    Subclasses set ``observation_dim``, ``action_dim``, ``state_dim``, ``horizon`` (and
    ``goal_dim`` when it is not 2, and :attr:`normalized_action` where the references'
    policies act in a normalised range) and implement :meth:`_initial_state` (random start
    states), :meth:`_transition`, :meth:`_observe`, :meth:`positions` and, where a
    goal-knowing reference controller exists, :meth:`oracle_action`. Environments
    whose state lives outside torch (a physics engine) override :meth:`_set_state`
    and :meth:`_advance` instead of :meth:`_transition`.
    """

    observation_dim: int
    action_dim: int
    state_dim: int
    horizon: int
    goal_dim: int = 2
    # (policy range r, action bound b): with normalize_actions, an action a of the policy becomes
    # clip(a, -r, r) * b / r before the environment's own step (the MAML and ProMP references' scaling);
    # None where the env's actions are already in such a range (the point mass)
    normalized_action: tuple[float, float] | None = None

    def __init__(self) -> None:
        self.goals: Tensor | None = None
        self.state: Tensor | None = None  # [T, E, state_dim]
        self.steps_taken: int = 0
        self.normalize_actions = False

    def environment_actions(self, actions: Tensor) -> Tensor:
        """The actions ``[T, E, A]`` the environment's dynamics receive for the policy's ``actions``."""
        if not self.normalize_actions or self.normalized_action is None:
            return actions
        policy_range, bound = self.normalized_action
        return actions.clamp(-policy_range, policy_range) * (bound / policy_range)

    # --- interface -------------------------------------------------------------------

    def reset(
        self,
        goals: Tensor,
        episodes: int,
        generator: torch.Generator | None = None,
        initial_state: Tensor | None = None,
    ) -> Tensor:
        """Start ``E = episodes`` episodes of each of the ``T`` tasks.

        Args:
            goals: ``[T, goal_dim]`` goal of each task; fixes the device.
            episodes: episodes per task ``E``.
            generator: CPU generator for random start states (draws happen on CPU,
                then move to ``goals.device``), or one per task
                (:class:`~mmaml.rl.task_generators.TaskGenerators`); ``None`` uses torch's
                global generator.
            initial_state: ``[T, E, state_dim]`` start states, overriding the random ones.

        Returns:
            observations ``[T, E, observation_dim]``.
        """
        if goals.ndim != 2 or goals.shape[1] != self.goal_dim:
            raise ValueError(f"goals must have shape [T, {self.goal_dim}], got {tuple(goals.shape)}")
        if episodes < 1:
            raise ValueError(f"episodes must be positive, got {episodes}")
        self.goals = goals.detach().to(torch.float32)
        num_tasks = goals.shape[0]
        if initial_state is None:
            if isinstance(generator, TaskGenerators):  # each task's start states from its own generator
                if len(generator) != num_tasks:
                    raise ValueError(f"{len(generator)} task generators for {num_tasks} tasks")
                state = torch.cat([self._initial_state(1, episodes, g) for g in generator.generators])
            else:
                state = self._initial_state(num_tasks, episodes, generator)
        else:
            expected = (num_tasks, episodes, self.state_dim)
            if tuple(initial_state.shape) != expected:
                got = tuple(initial_state.shape)
                raise ValueError(f"initial_state must have shape {expected}, got {got}")
            state = initial_state.detach()
        self._set_state(state.to(goals.device))
        self.steps_taken = 0
        return self._observe()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Advance every episode by one step.

        Args:
            actions: ``[T, E, action_dim]`` raw policy outputs (mapped by :meth:`environment_actions`).

        Returns:
            observations ``[T, E, observation_dim]`` and rewards ``[T, E]``.
        """
        if self.state is None or self.goals is None:
            raise RuntimeError("call reset() before step()")
        if self.steps_taken >= self.horizon:
            raise RuntimeError(f"episode is over: all {self.horizon} steps were taken; call reset()")
        expected = (*self.state.shape[:2], self.action_dim)
        if tuple(actions.shape) != expected:
            raise ValueError(f"actions must have shape {expected}, got {tuple(actions.shape)}")
        actions = actions.detach().to(device=self.state.device, dtype=torch.float32)
        rewards = self._advance(self.environment_actions(actions))
        self.steps_taken += 1
        return self._observe(), rewards

    @property
    def num_tasks(self) -> int:
        """Number of tasks ``T`` of the current batch."""
        return 0 if self.state is None else self.state.shape[0]

    @property
    def episodes(self) -> int:
        """Episodes per task ``E`` of the current batch."""
        return 0 if self.state is None else self.state.shape[1]

    @property
    def done(self) -> bool:
        """Whether all ``horizon`` steps have been taken."""
        return self.steps_taken >= self.horizon

    def initial_state_copy(self) -> Tensor:
        """The current state ``[T, E, S]`` at full precision, to pass back as ``reset(initial_state=...)``."""
        return self.state.clone()

    def distance(self) -> Tensor:
        """Euclidean distance ``[T, E]`` from the current positions ``[T, E, G]`` to the goals."""
        return torch.linalg.vector_norm(self.positions - self.goals[:, None, :], dim=-1)

    @property
    @abc.abstractmethod
    def positions(self) -> Tensor:
        """Current positions ``[T, E, P]`` (the plane for the 2D envs, the x-coordinate for the half-cheetah)."""

    @property
    def has_oracle(self) -> bool:
        """Whether :meth:`oracle_action` is implemented (a goal-knowing reference controller exists)."""
        return type(self).oracle_action is not BatchedEnv.oracle_action

    def oracle_action(self) -> Tensor:
        """Raw action ``[T, E, action_dim]`` of the goal-knowing reference controller, where one exists."""
        raise NotImplementedError(f"{type(self).__name__} has no goal-knowing reference controller")

    # --- subclass hooks ----------------------------------------------------------------

    @abc.abstractmethod
    def _initial_state(self, num_tasks: int, episodes: int, generator: torch.Generator | None) -> Tensor:
        """Random start states ``[T, E, state_dim]`` on CPU."""

    def _transition(self, state: Tensor, actions: Tensor) -> Tensor:
        """Next state ``[T, E, S]`` from state ``[T, E, S]`` and raw actions ``[T, E, A]``."""
        raise NotImplementedError

    def _set_state(self, state: Tensor) -> None:
        """Start from ``state [T, E, S]`` (on the goals' device)."""
        self.state = state.to(torch.float32).clone()

    def _advance(self, actions: Tensor) -> Tensor:
        """Take one step with raw ``actions [T, E, A]``; return the rewards ``[T, E]``."""
        self.state = self._transition(self.state, actions)
        return self._reward()

    def _observe(self) -> Tensor:
        """Observations ``[T, E, O]`` of the current state (a copy)."""
        return self.state.clone()

    def _reward(self) -> Tensor:
        """Reward ``[T, E]`` of the state just reached: minus the distance to the goal."""
        return -self.distance()


class GoalReachingEnv(gym.Env):
    """Gymnasium base of the goal-reaching envs: reward ``-||position - goal||`` after each move.

    A task (goal) persists across resets, as a meta-RL task spans several episodes.
    ``reset(options={"goal": g, "state": s})`` sets the task and/or the start state;
    without a task ever set, one is drawn from ``goal_distribution`` with
    ``self.np_random`` at the first reset (after the start state, so that a seeded
    reset gives the same start state whether or not a task was drawn).
    ``terminated`` is always False; ``truncated`` is True at the ``horizon``-th step,
    and stepping further without a reset raises.

    Subclasses set ``observation_space``, ``action_space``, ``state_dim`` and implement
    :meth:`_start_state` and :meth:`_move`.
    """

    metadata: dict[str, Any] = {"render_modes": []}
    horizon: int = 100
    state_dim: int

    def __init__(self, goal_distribution: GoalDistribution, render_mode: str | None = None) -> None:
        if render_mode is not None:
            raise ValueError(f"{type(self).__name__} supports render_mode=None only, got {render_mode!r}")
        self.render_mode = render_mode
        self.goal_distribution = goal_distribution
        self.goal: np.ndarray | None = None
        self.mode: int | None = None
        self._state: np.ndarray | None = None
        self._steps = 0

    # --- tasks ---------------------------------------------------------------------------

    def set_task(self, goal: np.ndarray | list[float]) -> None:
        """Set the goal ``[2]``; its mode is the most likely mode of the goal distribution."""
        goal_arr = np.array(goal, dtype=np.float64).reshape(-1)
        if goal_arr.shape != (2,):
            raise ValueError(f"goal must have 2 numbers, got shape {np.shape(goal)}")
        self.goal = goal_arr
        self.mode = self.goal_distribution.mode_of(goal_arr)

    def sample_tasks(self, n: int) -> list[np.ndarray]:
        """Draw ``n`` goals ``[2]`` from the goal distribution with ``self.np_random``."""
        return [self.goal_distribution.sample_one(self.np_random)[0] for _ in range(n)]

    # --- gymnasium API -------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "state" in options:
            state = np.array(options["state"], dtype=np.float64).reshape(-1)
            if state.shape != (self.state_dim,):
                got = np.shape(options["state"])
                raise ValueError(f"state must have {self.state_dim} numbers, got shape {got}")
        else:
            state = self._start_state(self.np_random)
        if "goal" in options:
            self.set_task(options["goal"])
        elif self.goal is None:
            self.goal, self.mode = self.goal_distribution.sample_one(self.np_random)
        self._state = state
        self._steps = 0
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if self._steps >= self.horizon:
            raise RuntimeError(f"episode is over: all {self.horizon} steps were taken; call reset()")
        self._state = self._move(self._state, np.asarray(action, dtype=np.float64).reshape(2))
        self._steps += 1
        reward = -self._distance()
        truncated = self._steps >= self.horizon
        return self._observation(), float(reward), False, truncated, self._info()

    # --- helpers -------------------------------------------------------------------------

    @abc.abstractmethod
    def _start_state(self, rng: np.random.Generator) -> np.ndarray:
        """Start state ``[S]`` float64."""

    @abc.abstractmethod
    def _move(self, state: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Next state ``[S]`` from state ``[S]`` and the raw action ``[2]`` (clipped/mapped here)."""

    def _distance(self) -> float:
        return float(np.sqrt(np.sum((self._state[:2] - self.goal) ** 2)))

    def _observation(self) -> np.ndarray:
        return self._state.astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {"goal": self.goal.copy(), "distance": self._distance()}
