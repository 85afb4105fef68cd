"""The modulation network: task embedding -> one tau vector per modulated layer."""

from __future__ import annotations

from typing import Mapping

from torch import Tensor, nn


class ModulationNetwork(nn.Module):
    """One linear head per modulated layer.

    Args:
        embedding_dim: size of the task embedding ``v``.
        tau_sizes: ``{site: length of tau}`` (see ``Learner.tau_sizes``).
        init: ``"default"`` (PyTorch's linear initialisation) or ``"zero"``
            (weights and biases zero, so every task starts with tau = 0: the
            identity for FiLM, and the learner trains at first as plain MAML).
    """

    INITS = ("default", "zero")

    def __init__(self, embedding_dim: int, tau_sizes: Mapping[str, int], init: str = "default"):
        super().__init__()
        if init not in self.INITS:
            raise ValueError(f"unknown modulation init {init!r}; choose one of {', '.join(self.INITS)}")
        self.sites = list(tau_sizes)
        # ModuleDict keys may not contain '.', so heads are stored by position.
        self.heads = nn.ModuleList(nn.Linear(embedding_dim, size) for size in tau_sizes.values())
        if init == "zero":
            for head in self.heads:
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def forward(self, embedding: Tensor) -> dict[str, Tensor]:
        """``embedding [T, E]`` -> ``{site: [T, tau_size]}``."""
        return {site: head(embedding) for site, head in zip(self.sites, self.heads)}
