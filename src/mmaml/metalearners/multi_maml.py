"""Multi-MAML: one MAML initialisation per mode, chosen by the true mode label.

This is the paper's oracle baseline: it needs the mode of every task, which
MuMoMAML has to infer. A batch is split by mode (a loop over the few modes,
never over tasks); the tasks of one mode share their initialisation, so each
group adapts in one batched inner loop as fast as MAML does, and the results
are put back in the batch's task order.

Example::

    learners = [Learner(RegressionMLP(bias_transformation=20)) for _ in range(2)]
    multi = MultiMAML(learners, inner_lr=0.001, inner_steps=5)
    out = multi(batch)           # batch.mode selects each task's initialisation
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from mmaml.core.learner import Learner, Params
from mmaml.metalearners.base import GradientMetaLearner, MetaOutput
from mmaml.tasks.batch import TaskBatch


class MultiMAML(GradientMetaLearner):
    """One learner per mode; ``learners[m]`` is the MAML model of mode ``m``."""

    needs_mode = True

    def __init__(self, learners: Sequence[Learner], **kwargs):
        if len(learners) < 1:
            raise ValueError("Multi-MAML needs at least one learner")
        super().__init__(learners[0], **kwargs)
        self.mode_learners = nn.ModuleList(learners)

    @property
    def num_modes(self) -> int:
        return len(self.mode_learners)

    def _check_modes(self, batch: TaskBatch) -> None:
        if int(batch.mode.max()) >= self.num_modes or int(batch.mode.min()) < 0:
            raise ValueError(f"task modes must lie in [0, {self.num_modes}); got {batch.mode.unique().tolist()}")

    def initial_parameters(self, batch: TaskBatch) -> Params:
        """``theta[mode_t]`` for each task ``t``: ``{name: [T, *shape]}``."""
        self._check_modes(batch)
        per_mode = [learner.meta_parameters() for learner in self.mode_learners]
        return {name: torch.stack([p[name] for p in per_mode])[batch.mode] for name in per_mode[0]}

    def forward(
        self,
        batch: TaskBatch,
        steps: int | None = None,
        create_graph: bool | None = None,
        with_prior: bool = False,
    ) -> MetaOutput:
        """As :meth:`GradientMetaLearner.forward`, one batched inner loop per mode present."""
        self._check_modes(batch)
        groups = [(m, torch.nonzero(batch.mode == m).squeeze(1)) for m in batch.mode.unique().tolist()]
        outs = [
            self.run_from(batch.select(index), self.mode_learners[m].meta_parameters(), steps, create_graph, with_prior)
            for m, index in groups
        ]
        if len(outs) == 1:
            return outs[0]
        order = torch.cat([index for _, index in groups])
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order), device=order.device)

        def merge(parts: Sequence[Tensor]) -> Tensor:
            return torch.cat(list(parts))[inverse]

        adapted = [out.adapted_params for out in outs]
        return MetaOutput(
            query_loss=merge([out.query_loss for out in outs]),
            prior_query_loss=merge([out.prior_query_loss for out in outs]) if with_prior else None,
            query_pred=merge([out.query_pred for out in outs]),
            prior_query_pred=merge([out.prior_query_pred for out in outs]) if with_prior else None,
            adapted={name: merge([a[name] for a in adapted]) for name in adapted[0]},
        )
