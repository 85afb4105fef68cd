"""A batch of sampled episodes: T tasks x E episodes x H steps, as tensors."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass
class Episodes:
    """Episodes of ``T`` tasks, ``E`` per task, each ``H`` steps long (fixed horizon).

    Attributes:
        observations: ``[T, E, H, O]`` observation before each action.
        actions: ``[T, E, H, A]`` the raw policy samples (the environment clips them).
        rewards: ``[T, E, H]``.
        log_probs: ``[T, E, H]`` log-density of each action under the policy that sampled it.
        positions: ``[T, E, H + 1, 2]`` the agent's position before each step and after the last.
        advantages: ``[T, E, H]`` normalised advantages (set by the sampler), or None.
    """

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    log_probs: Tensor
    positions: Tensor
    advantages: Tensor | None = None

    @property
    def num_tasks(self) -> int:
        return self.rewards.shape[0]

    @property
    def episode_returns(self) -> Tensor:
        """Undiscounted return of every episode: ``[T, E]``."""
        return self.rewards.sum(-1)

    def task_returns(self) -> Tensor:
        """Average undiscounted episode return of each task: ``[T]``."""
        return self.episode_returns.mean(-1)

    def flat(self) -> tuple[Tensor, Tensor]:
        """``(observations [T, E*H, O], actions [T, E*H, A])``: one sample per step, per task."""
        t = self.num_tasks
        return self.observations.reshape(t, -1, self.observations.shape[-1]), self.actions.reshape(t, -1, self.actions.shape[-1])

    def to(self, device: torch.device | str) -> "Episodes":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})

    def select(self, index) -> "Episodes":
        """The tasks at ``index`` (a slice or index tensor; keeps the task dimension)."""
        return replace(self, **{f.name: getattr(self, f.name)[index] for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})
