"""The modulation network: task embedding -> one tau vector per modulated layer."""

from __future__ import annotations

from typing import Mapping

from torch import Tensor, nn


class ModulationNetwork(nn.Module):
    """One linear head per modulated layer.

    Args:
        embedding_dim: size of the task embedding ``v``.
        tau_sizes: ``{site: length of tau}`` (see ``Learner.tau_sizes``).
    """

    def __init__(self, embedding_dim: int, tau_sizes: Mapping[str, int]):
        super().__init__()
        self.sites = list(tau_sizes)
        # ModuleDict keys may not contain '.', so heads are stored by position.
        self.heads = nn.ModuleList(nn.Linear(embedding_dim, size) for size in tau_sizes.values())

    def forward(self, embedding: Tensor) -> dict[str, Tensor]:
        """``embedding [T, E]`` -> ``{site: [T, tau_size]}``."""
        return {site: head(embedding) for site, head in zip(self.sites, self.heads)}
