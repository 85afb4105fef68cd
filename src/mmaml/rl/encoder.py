"""The meta-RL task encoder: a GRU over each trajectory, averaged over a task's trajectories."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TrajectoryEncoder(nn.Module):
    """Reads a task's trajectories and returns one embedding per task.

    Each step of a trajectory is ``concat(observation, action, reward)``; a GRU
    reads the steps, its last hidden state goes through ``dense-ReLU-dense``,
    the result is averaged over the task's trajectories and goes through
    ``dense-ReLU-dense`` again (the authors' architecture, 64 units throughout).

    Args:
        observation_dim, action_dim: sizes of an observation and an action.
        hidden_size: GRU units and width of the dense layers.
        embedding_dim: size of the task embedding.
    """

    def __init__(self, observation_dim: int, action_dim: int, hidden_size: int = 64, embedding_dim: int = 64):
        super().__init__()
        self.gru = nn.GRU(observation_dim + action_dim + 1, hidden_size, batch_first=True)
        self.per_trajectory = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU(),
                                            nn.Linear(hidden_size, hidden_size))
        self.per_task = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU(),
                                      nn.Linear(hidden_size, embedding_dim))
        self._embedding_dim = embedding_dim

    @property
    def embedding_dim(self) -> int:
        return self._embedding_dim

    def forward(self, observations: Tensor, actions: Tensor, rewards: Tensor) -> Tensor:
        """``observations [T, E, H, O]``, ``actions [T, E, H, A]``, ``rewards [T, E, H]`` -> ``[T, embedding_dim]``."""
        t, e, h = rewards.shape
        steps = torch.cat([observations, actions, rewards.unsqueeze(-1)], dim=-1).reshape(t * e, h, -1)
        _, last = self.gru(steps)  # last: [1, T*E, hidden]
        per_trajectory = self.per_trajectory(last[0]).view(t, e, -1)
        return self.per_task(per_trajectory.mean(1))
