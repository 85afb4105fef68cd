"""Task encoders: read a task's support set and return one embedding vector per task."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RecurrentTaskEncoder(nn.Module):
    """The paper's regression task encoder: a bidirectional RNN over the support pairs.

    Each support pair ``concat(x, y)`` is one step of a sequence; the embedding is
    ``[last forward output; first backward output]`` of the top layer.

    Args:
        input_dim: size of ``concat(flatten(x), flatten(y))`` for one sample.
        hidden_size: RNN hidden size per direction (40 in the paper).
        num_layers: stacked layers (2 in the paper).
        cell: ``"lstm"`` (paper) or ``"gru"``.
    """

    def __init__(self, input_dim: int, hidden_size: int = 40, num_layers: int = 2, cell: str = "lstm"):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}.get(cell)
        if rnn is None:
            raise ValueError(f"unknown encoder cell {cell!r}; choose 'lstm' or 'gru'")
        self.hidden_size = hidden_size
        self.rnn = rnn(input_dim, hidden_size, num_layers=num_layers, bidirectional=True, batch_first=True)

    @property
    def embedding_dim(self) -> int:
        return 2 * self.hidden_size

    def forward(self, support_x: Tensor, support_y: Tensor) -> Tensor:
        """``support_x [T, K, ...]``, ``support_y [T, K, ...]`` -> embeddings ``[T, 2 * hidden]``."""
        t, k = support_x.shape[:2]
        pairs = torch.cat([support_x.reshape(t, k, -1), support_y.reshape(t, k, -1)], dim=-1)
        out, _ = self.rnn(pairs)
        h = self.hidden_size
        return torch.cat([out[:, -1, :h], out[:, 0, h:]], dim=-1)
