"""MuMoMAML (Vuorio et al.): modulate the prior from the support set, then adapt it.

Algorithm 1 of the paper: a task encoder reads the K support samples and a
modulation network maps the embedding to one tau per modulated layer; tau is
held fixed while the learner's parameters take the inner SGD steps; the
post-adaptation query loss trains both theta (learner) and omega (encoder and
modulation network).

Example::

    learner = Learner(RegressionMLP(), modulate=["hidden.0"])
    encoder = RecurrentTaskEncoder(input_dim=2, hidden_size=40)
    model = MuMoMAML(learner, encoder, modulation="film", inner_lr=0.001, inner_steps=5)
    out = model(batch)
    out.loss.backward()          # gradients for theta and omega
"""

from __future__ import annotations

from typing import Mapping

from torch import Tensor, nn

from mmaml.core.learner import Learner
from mmaml.core.modulation import check_kind
from mmaml.core.modulation_network import ModulationNetwork
from mmaml.metalearners.base import GradientMetaLearner
from mmaml.tasks.batch import TaskBatch


class MuMoMAML(GradientMetaLearner):
    """Multimodal MAML with task-aware modulation.

    Args:
        learner: a :class:`Learner` with at least one modulated layer.
        task_encoder: module ``(support_x, support_y) -> [T, E]`` with an
            ``embedding_dim`` attribute.
        modulation: ``"film"``, ``"sigmoid"`` or ``"softmax"``.
        modulation_init: initialisation of the modulation heads, ``"default"``
            or ``"zero"`` (see :class:`ModulationNetwork`).
        **kwargs: inner-loop settings of :class:`GradientMetaLearner`.
    """

    def __init__(
        self,
        learner: Learner,
        task_encoder: nn.Module,
        modulation: str = "film",
        modulation_init: str = "default",
        **kwargs,
    ):
        check_kind(modulation)
        if not learner.sites:
            raise ValueError("MuMoMAML needs a Learner with at least one modulated layer (Learner(model, modulate=[...]))")
        super().__init__(learner, **kwargs)
        self.modulation_kind = modulation
        self.task_encoder = task_encoder
        self.modulation_network = ModulationNetwork(
            task_encoder.embedding_dim, learner.tau_sizes(modulation), modulation_init
        )

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The learner, and the task encoder with the modulation network (clipped separately, as the authors do)."""
        learner = list(self.learner.parameters())
        mine = {id(p) for p in learner}
        return [learner, [p for p in self.parameters() if id(p) not in mine]]

    def embed(self, batch: TaskBatch) -> Tensor:
        """Task embeddings ``[T, E]`` from the support set."""
        return self.task_encoder(batch.support_x, batch.support_y)

    def task_modulation(self, batch: TaskBatch) -> tuple[Mapping[str, Tensor], Tensor]:
        embedding = self.embed(batch)
        return self.modulation_network(embedding), embedding
