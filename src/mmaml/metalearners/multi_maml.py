"""Multi-MAML: one MAML initialisation per mode, chosen by the true mode label.

This is the paper's oracle baseline: it needs the mode of every task, which
MuMoMAML has to infer. All modes' initialisations are stacked so that a batch
with tasks of every mode still adapts in one batched inner loop.

Example::

    learners = [Learner(RegressionMLP(bias_transformation=20)) for _ in range(2)]
    multi = MultiMAML(learners, inner_lr=0.001, inner_steps=5)
    out = multi(batch)           # batch.mode selects each task's initialisation
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mmaml.core.learner import Learner, Params
from mmaml.metalearners.base import GradientMetaLearner
from mmaml.tasks.batch import TaskBatch


class MultiMAML(GradientMetaLearner):
    """One learner per mode; ``learners[m]`` is the MAML model of mode ``m``."""

    def __init__(self, learners: Sequence[Learner], **kwargs):
        if len(learners) < 1:
            raise ValueError("Multi-MAML needs at least one learner")
        super().__init__(learners[0], **kwargs)
        self.mode_learners = nn.ModuleList(learners)

    @property
    def num_modes(self) -> int:
        return len(self.mode_learners)

    def initial_parameters(self, batch: TaskBatch) -> Params:
        """``theta[mode_t]`` for each task ``t``: ``{name: [T, *shape]}``."""
        if int(batch.mode.max()) >= self.num_modes or int(batch.mode.min()) < 0:
            raise ValueError(f"task modes must lie in [0, {self.num_modes}); got {batch.mode.unique().tolist()}")
        per_mode = [learner.meta_parameters() for learner in self.mode_learners]
        return {name: torch.stack([p[name] for p in per_mode])[batch.mode] for name in per_mode[0]}
