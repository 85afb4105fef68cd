"""N copies of one MuJoCo model stepped together: the physics under a batched MuJoCo environment.

State in and out is ``qpos`` and ``qvel`` side by side, float64 numpy ``[N, nq + nv]``;
controls are ``[N, nu]``; one :meth:`BatchedMujoco.step` advances every copy by
``frame_skip`` physics steps with its control held, as gymnasium's ``MujocoEnv.do_simulation``
does for one env.

Two backends:

* ``"rollout"`` (the default): MuJoCo's own batched stepping, ``mujoco.rollout``, one
  call per policy step for all N copies, in a thread pool that this object owns
  (created once, closed by :meth:`close` or garbage collection; ``threads=1`` runs on
  the calling thread). The rollout does not return the constraint solver's warm
  start (``qacc_warmstart``) of each copy, which an ``MjData`` carries from step to
  step; we pass it an estimate, the last physics step's acceleration
  ``(qvel_k - qvel_{k-1}) / timestep`` (zero after a reset, as in a fresh ``MjData``).
  The warm start is only where the solver begins its iterations, so the result is
  gymnasium's up to the solver's tolerance (measured: a few 1e-5 in positions after
  100 half-cheetah steps), identical to it when warm starts are disabled in both,
  and the same for any number of threads.
* ``"loop"``: one ``MjData`` per copy and a Python loop of ``mj_step``. Slower with
  several threads, and bit for bit gymnasium's trajectories (each copy keeps its
  own warm start), so it is the reference the tests hold the rollout backend to.
"""

from __future__ import annotations

import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

BACKENDS = ("rollout", "loop")
_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS


class BatchedMujoco:
    """Step ``N`` copies of ``model`` together.

    Args:
        model: the compiled MuJoCo model (shared by every copy, not modified).
        frame_skip: physics steps per :meth:`step`.
        threads: threads of the rollout pool (``"rollout"`` backend).
        backend: ``"rollout"`` or ``"loop"`` (see the module docstring).
    """

    def __init__(self, model: mujoco.MjModel, frame_skip: int, threads: int = 1, backend: str = "rollout") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown MuJoCo backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if frame_skip < 1 or threads < 1:
            raise ValueError(f"frame_skip and threads must be positive, got {frame_skip} and {threads}")
        self.model = model
        self.frame_skip = int(frame_skip)
        self.threads = int(threads)
        self.backend = backend
        self.nq, self.nv, self.nu = model.nq, model.nv, model.nu
        self._nstate = mujoco.mj_stateSize(model, _FULL)
        # qpos and qvel inside the full physics state (its elements follow the mjtState bit order)
        self._qpos_at = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_TIME)
        self._template = np.zeros(self._nstate)
        data = mujoco.MjData(model)
        mujoco.mj_getState(model, data, self._template, _FULL)
        self._pool: mj_rollout.Rollout | None = None
        self._datas: list[mujoco.MjData] = []
        self._full: np.ndarray | None = None  # [N, nstate] (rollout backend)
        self._warmstart: np.ndarray | None = None  # [N, nv] (rollout backend)
        self._out: np.ndarray | None = None  # [N, frame_skip, nstate] (rollout backend)
        self._previous_qvel: np.ndarray | None = None  # [N, nv] (rollout backend, frame_skip 1)
        if backend == "rollout":
            self._pool = mj_rollout.Rollout(nthread=0 if self.threads == 1 else self.threads)
            self._datas = [mujoco.MjData(model) for _ in range(self.threads)]

    @property
    def state_dim(self) -> int:
        """``nq + nv``."""
        return self.nq + self.nv

    def reset(self, qpos_qvel: np.ndarray) -> None:
        """Start the ``N`` copies from ``qpos_qvel [N, nq + nv]`` (float64), as gymnasium's ``reset`` + ``set_state``."""
        qq = np.ascontiguousarray(qpos_qvel, dtype=np.float64)
        if qq.ndim != 2 or qq.shape[1] != self.state_dim:
            raise ValueError(f"state must have shape [N, {self.state_dim}], got {qq.shape}")
        n = qq.shape[0]
        if self.backend == "rollout":
            self._full = np.tile(self._template, (n, 1))
            self._full[:, self._qpos_at:self._qpos_at + self.state_dim] = qq
            self._warmstart = np.zeros((n, self.nv))
            self._previous_qvel = qq[:, self.nq:].copy()
            self._out = np.empty((n, self.frame_skip, self._nstate))
        else:
            if len(self._datas) != n:
                self._datas = [mujoco.MjData(self.model) for _ in range(n)]
            for d, row in zip(self._datas, qq):
                mujoco.mj_resetData(self.model, d)
                d.qpos[:] = row[:self.nq]
                d.qvel[:] = row[self.nq:]
                mujoco.mj_forward(self.model, d)

    def step(self, ctrl: np.ndarray) -> np.ndarray:
        """Hold ``ctrl [N, nu]`` for ``frame_skip`` physics steps; return the new ``qpos_qvel [N, nq + nv]``."""
        ctrl = np.ascontiguousarray(ctrl, dtype=np.float64)
        if self.backend == "rollout":
            if self._full is None:
                raise RuntimeError("call reset() before step()")
            n = self._full.shape[0]
            if ctrl.shape != (n, self.nu):
                raise ValueError(f"controls must have shape {(n, self.nu)}, got {ctrl.shape}")
            self._pool.rollout(self.model, self._datas, self._full, ctrl[:, None, :], nstep=self.frame_skip,
                               initial_warmstart=self._warmstart, state=self._out)
            self._full = self._out[:, -1].copy()
            qvel_at = self._qpos_at + self.nq
            last_qvel = self._out[:, -1, qvel_at:qvel_at + self.nv]
            before = self._out[:, -2, qvel_at:qvel_at + self.nv] if self.frame_skip > 1 else self._previous_qvel
            self._warmstart = (last_qvel - before) / self.model.opt.timestep
            self._previous_qvel = last_qvel.copy()
            return self._full[:, self._qpos_at:self._qpos_at + self.state_dim].copy()
        if not self._datas:
            raise RuntimeError("call reset() before step()")
        if ctrl.shape != (len(self._datas), self.nu):
            raise ValueError(f"controls must have shape {(len(self._datas), self.nu)}, got {ctrl.shape}")
        out = np.empty((len(self._datas), self.state_dim))
        for d, c, row in zip(self._datas, ctrl, out):
            d.ctrl[:] = c
            mujoco.mj_step(self.model, d, nstep=self.frame_skip)
            row[:self.nq] = d.qpos
            row[self.nq:] = d.qvel
        return out

    def close(self) -> None:
        """Shut the rollout thread pool down (idempotent)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __del__(self) -> None:  # the pool's threads must not outlive the object
        try:
            self.close()
        except Exception:
            pass
