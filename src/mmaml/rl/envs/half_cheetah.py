"""Half-cheetah with a target speed or a target x-location, each with two modes (our definitions).

The physics is gymnasium's ``HalfCheetah-v5`` (its MuJoCo model, frame skip 5,
timestep 0.01, so ``dt = 0.05`` s per policy step; its start states
``qpos0 + U(-0.1, 0.1)`` and ``0.1 * N(0, 1)`` velocities). Only the reward and the
task distribution are ours; the authors' environments were never published.

* **Target speed** (``task="speed"``): reward ``-|v - v*| - 0.05 ||a||^2`` with
  ``v = (x_after - x_before) / dt`` (gymnasium's ``x_velocity``), ProMP's velocity
  reward. ``v*`` is ``N(-1, 0.25^2)`` ("backward") or ``N(2, 0.25^2)`` ("forward") m/s.
  Running backward and forward need opposite gaits, so one initialisation suits
  neither mode; the magnitudes differ so that the modes are also told apart by
  speed; a 0.25 spread leaves 12 spreads between the centres; both speeds are
  reachable within a few hundred meta-iterations. Standing still scores
  ``-H * E|v*| = -150``, as in ProMP's ``U[0, 3]`` task, so the scales compare.
  Observation: gymnasium's 17 numbers (``qpos[1:]``, ``qvel``).
* **Target location** (``task="location"``): reward ``-|x - x*| - 0.05 ||a||^2`` with
  ``x`` the torso's x-position after the step. ``x*`` is ``N(-3, 0.5^2)`` ("behind")
  or ``N(3, 0.5^2)`` ("ahead") m, on either side of the start. Reaching 3 m in the
  5 s of an episode needs 0.6 m/s on average, well within the cheetah's reach,
  leaving time to stop there; standing still scores about ``-300``. Observation:
  18 numbers (``qpos`` including x, then ``qvel``), since the policy must know where
  it is. ``modes=("ahead",)`` keeps one mode: a unimodal sanity anchor (registered
  as ``cheetah-location-ahead``) that tells whether the task can be learnt at all
  when there is no mode to identify.

Both: horizon 100 (ProMP's; the MAML paper used 200, at twice the cost); the raw
action is clipped to the actuators' range ``[-1, 1]`` (MuJoCo would clamp it
anyway) before the control cost, so that exploration noise beyond the range costs
no more than the range's edge. There is no goal-knowing reference controller.

Shapes: the batched env works on goals ``[T, 1]``, physics state ``qpos, qvel``
``[T, E, 18]`` (float64 inside, float32 in ``state``), observations ``[T, E, 17 or 18]``,
actions ``[T, E, 6]``, rewards ``[T, E]``; positions are the x-coordinate ``[T, E, 1]``.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium
import mujoco
import numpy as np
import torch
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from torch import Tensor

from mmaml.rl.envs.base import BatchedEnv
from mmaml.rl.envs.goals import GoalDistribution, cheetah_location_goals, cheetah_speed_goals
from mmaml.rl.envs.mujoco_batch import BatchedMujoco

TASKS = ("speed", "location")
HORIZON = 100
FRAME_SKIP = 5
CTRL_COST = 0.05
RESET_NOISE = 0.1
ACTION_LIMIT = 1.0


def compile_model(path: str) -> mujoco.MjModel:
    """Compile a MuJoCo XML file, applying a ``<compiler settotalmass>`` to the compiled model.

    MuJoCo deprecates that attribute (gymnasium's half-cheetah sets it to 14 kg): it
    prints a warning and writes ``MUJOCO_LOG.TXT`` into the working directory on every
    load. Compiling without it, then ``mj_setTotalmass`` and ``mj_setConst``, as the
    warning advises, gives a model equal to the attribute's, array for array, and keeps
    the total mass when MuJoCo drops the attribute.
    """
    if not hasattr(mujoco, "MjSpec"):  # MuJoCo before 3.2: the attribute is not deprecated there
        return mujoco.MjModel.from_xml_path(path)
    spec = mujoco.MjSpec.from_file(path)
    total = getattr(spec.compiler, "settotalmass", -1)
    if total <= 0:  # not set
        return spec.compile()
    spec.compiler.settotalmass = -1
    model = spec.compile()
    mujoco.mj_setTotalmass(model, total)
    mujoco.mj_setConst(model, mujoco.MjData(model))
    return model


def cheetah_xml() -> str:
    """The path of gymnasium's half-cheetah model (``assets/half_cheetah.xml``)."""
    return os.path.join(os.path.dirname(gymnasium.envs.mujoco.__file__), "assets", "half_cheetah.xml")


def cheetah_model() -> mujoco.MjModel:
    """gymnasium's half-cheetah MuJoCo model, compiled by :func:`compile_model`."""
    return compile_model(cheetah_xml())


def cheetah_goals(task: str, modes: tuple[str, ...] | None = None) -> GoalDistribution:
    """The two-mode distribution of target speeds or target locations (``modes``: a subset of the latter's)."""
    if task not in TASKS:
        raise ValueError(f"unknown half-cheetah task {task!r}; choose one of {', '.join(TASKS)}")
    if task == "speed":
        if modes is not None:
            raise ValueError("the target-speed task keeps both its modes")
        return cheetah_speed_goals()
    return cheetah_location_goals(modes)


def task_reward(task: str, x_before, x_after, actions, goal, dt: float):
    """Reward of one step (numpy or torch, broadcasting): see the module docstring.

    Args:
        x_before, x_after: x-positions ``[...]`` before and after the step.
        actions: the clipped actions ``[..., 6]``.
        goal: the target speed or location ``[...]``.
    """
    ctrl = CTRL_COST * (actions**2).sum(-1)
    if task == "speed":
        return -abs((x_after - x_before) / dt - goal) - ctrl
    return -abs(x_after - goal) - ctrl


class BatchedHalfCheetah(BatchedEnv):
    """``T`` tasks x ``E`` half-cheetahs stepped together through :class:`BatchedMujoco`.

    Args:
        task: ``"speed"`` or ``"location"``.
        threads: MuJoCo threads of the ``"rollout"`` backend.
        backend: ``"rollout"`` (``mujoco.rollout``, the fast default) or ``"loop"``
            (bit for bit gymnasium's trajectories); see :mod:`mmaml.rl.envs.mujoco_batch`.
    """

    action_dim = 6
    normalized_action = (10.0, ACTION_LIMIT)  # ProMP's normalised env: [-10, 10] onto the actuators' [-1, 1]
    state_dim = 18
    horizon = HORIZON
    goal_dim = 1

    def __init__(self, task: str = "speed", threads: int = 1, backend: str = "rollout") -> None:
        super().__init__()
        cheetah_goals(task)  # validates the task
        self.task = task
        self.observation_dim = 17 if task == "speed" else 18
        self.model = cheetah_model()
        self.physics = BatchedMujoco(self.model, FRAME_SKIP, threads, backend)
        self.dt = FRAME_SKIP * self.model.opt.timestep
        self._init_qpos = torch.from_numpy(self.model.qpos0.copy())
        self._qq: np.ndarray | None = None  # [T * E, 18] float64
        self._targets: np.ndarray | None = None  # [T * E] float64

    def _initial_state(self, num_tasks: int, episodes: int, generator: torch.Generator | None) -> Tensor:
        shape = (num_tasks, episodes)
        noise = torch.rand(*shape, self.model.nq, generator=generator, dtype=torch.float64)
        qpos = self._init_qpos + RESET_NOISE * (2.0 * noise - 1.0)
        qvel = RESET_NOISE * torch.randn(*shape, self.model.nv, generator=generator, dtype=torch.float64)
        return torch.cat([qpos, qvel], dim=-1)

    def _set_state(self, state: Tensor) -> None:
        self._qq = state.detach().to("cpu", torch.float64).reshape(-1, self.state_dim).numpy().copy()
        self.physics.reset(self._qq)
        # each episode's target [T * E], fixed until the next reset
        self._targets = self.goals.to("cpu", torch.float64).repeat_interleave(state.shape[1], dim=0)[:, 0].numpy()
        self.state = torch.from_numpy(self._qq).view(state.shape).to(state.device, torch.float32)

    def initial_state_copy(self) -> Tensor:
        return torch.from_numpy(self._qq.copy()).view(*self.state.shape[:2], self.state_dim)

    def _advance(self, actions: Tensor) -> Tensor:
        t, e = self.state.shape[:2]
        clipped = actions.to("cpu", torch.float64).clamp(-ACTION_LIMIT, ACTION_LIMIT).reshape(t * e, -1).numpy()
        x_before = self._qq[:, 0]
        self._qq = self.physics.step(clipped)
        rewards = task_reward(self.task, x_before, self._qq[:, 0], clipped, self._targets, self.dt)
        device = self.state.device
        self.state = torch.from_numpy(self._qq).view(t, e, self.state_dim).to(device, torch.float32)
        return torch.from_numpy(rewards).view(t, e).to(device, torch.float32)

    def _observe(self) -> Tensor:
        return (self.state[..., 1:] if self.task == "speed" else self.state).clone()

    @property
    def positions(self) -> Tensor:
        return self.state[..., :1]

    def close(self) -> None:
        """Shut the physics thread pool down."""
        self.physics.close()


class HalfCheetahTaskEnv(HalfCheetahEnv):
    """Gymnasium half-cheetah with a target speed or location: one task at a time.

    Subclasses gymnasium's ``HalfCheetahEnv`` (v5) and replaces its reward with the
    task's (see the module docstring). A task persists across resets;
    ``reset(options={"goal": g})`` sets it (``g``: one number), otherwise one is drawn
    from the task distribution with ``self.np_random`` at the first reset. ``info``
    adds ``goal``, ``reward_task`` and ``reward_ctrl`` to gymnasium's ``x_position`` and
    ``x_velocity``. Registered with a 100-step time limit.
    """

    horizon = HORIZON

    def __init__(self, task: str = "speed", modes: tuple[str, ...] | None = None, **kwargs: Any) -> None:
        self.task = task
        self.goal_distribution = cheetah_goals(task, modes)
        super().__init__(frame_skip=FRAME_SKIP, ctrl_cost_weight=CTRL_COST, reset_noise_scale=RESET_NOISE,
                         exclude_current_positions_from_observation=(task == "speed"), **kwargs)
        self.goal: float | None = None
        self.mode: int | None = None

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        """gymnasium's loader, with the model compiled by :func:`compile_model` (no deprecation log)."""
        model = compile_model(self.fullpath)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def set_task(self, goal: float | np.ndarray) -> None:
        """Set the target (speed in m/s or x-location in m); its mode is the most likely one."""
        value = np.asarray(goal, dtype=np.float64).reshape(-1)
        if value.shape != (1,):
            raise ValueError(f"a half-cheetah goal is one number, got shape {np.shape(goal)}")
        self.goal = float(value[0])
        self.mode = self.goal_distribution.mode_of(value)

    def sample_tasks(self, n: int) -> list[float]:
        """Draw ``n`` targets with ``self.np_random``."""
        return [float(self.goal_distribution.sample_one(self.np_random)[0][0]) for _ in range(n)]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        options = options or {}
        if "goal" in options:
            self.set_task(options["goal"])
        elif self.goal is None:
            goal, self.mode = self.goal_distribution.sample_one(self.np_random)
            self.goal = float(goal[0])
        return obs, {**info, "goal": self.goal}

    def step(self, action: np.ndarray):
        if self.goal is None:
            raise RuntimeError("call reset() before step()")
        clipped = np.clip(np.asarray(action, dtype=np.float64), -ACTION_LIMIT, ACTION_LIMIT)
        x_before = float(self.data.qpos[0])
        self.do_simulation(clipped, self.frame_skip)
        x_after = float(self.data.qpos[0])
        ctrl = CTRL_COST * float(np.sum(clipped**2))
        reward = float(task_reward(self.task, x_before, x_after, clipped, self.goal, self.dt))
        info = {"x_position": x_after, "x_velocity": (x_after - x_before) / self.dt, "goal": self.goal,
                "reward_task": reward + ctrl, "reward_ctrl": -ctrl}
        return self._get_obs(), reward, False, False, info
