"""What every gradient-based meta-learner here shares: adapt on the support set,
score on the query set, all tasks of a batch at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from mmaml.core.learner import AnyParams, Learner, Params
from mmaml.core.low_rank_linear import FactoredParams
from mmaml.metalearners.losses import mse_per_task
from mmaml.tasks.batch import TaskBatch

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class MetaOutput:
    """Result of running a meta-learner on a :class:`TaskBatch` of ``T`` tasks.

    Attributes:
        query_loss: ``[T]`` query loss after adaptation (post adaptation).
        prior_query_loss: ``[T]`` query loss of the (modulated) prior before any
            inner step (post modulation), or None when not asked for.
        query_pred: ``[T, Q, ...]`` adapted predictions on the query inputs.
        prior_query_pred: ``[T, Q, ...]`` prior predictions, or None.
        adapted: the adapted per-task parameters, as the learner keeps them
            (see ``adapted_params`` for plain tensors).
        taus: ``{site: [T, tau_size]}`` or None (no modulation).
        embedding: ``[T, E]`` task embeddings, or None.
    """

    query_loss: Tensor
    prior_query_loss: Tensor | None
    query_pred: Tensor
    prior_query_pred: Tensor | None
    adapted: AnyParams
    taus: Mapping[str, Tensor] | None = None
    embedding: Tensor | None = None

    @property
    def adapted_params(self) -> Params:
        """``{name: [T, *shape]}``: each task's adapted parameters as plain tensors."""
        if isinstance(self.adapted, FactoredParams):
            return self.adapted.materialize()
        return self.adapted

    @property
    def loss(self) -> Tensor:
        """The meta-training objective: mean post-adaptation query loss."""
        return self.query_loss.mean()


class GradientMetaLearner(nn.Module):
    """MAML's inner/outer structure; subclasses choose where each task starts. A
    :class:`~mmaml.core.meta_learner.MetaLearner`.

    ``task_parameters`` gives each task's initial parameters and
    ``task_modulation`` its modulation; MAML shares both, Multi-MAML picks the
    parameters by mode and MuMoMAML infers a modulation from the support set.

    Args:
        learner: the model that adapts.
        inner_lr: inner SGD step size alpha.
        inner_steps: inner steps during meta-training.
        inner_grad_clip: elementwise clamp on inner gradients, or None.
        first_order: drop second-order terms from the meta-gradient.
        loss_fn: per-task loss ``(pred, target) -> [T]``; MSE by default.
    """

    modulation_kind: str = "film"
    needs_mode: bool = False  # whether each task's mode must be known (Multi-MAML)

    def __init__(
        self,
        learner: Learner,
        inner_lr: float,
        inner_steps: int,
        inner_grad_clip: float | None = None,
        first_order: bool = False,
        loss_fn: LossFn = mse_per_task,
    ):
        super().__init__()
        self.learner = learner
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.inner_grad_clip = inner_grad_clip
        self.first_order = first_order
        self.loss_fn = loss_fn

    @property
    def modulated(self) -> bool:
        """Whether a task encoder modulates the learner (MuMoMAML)."""
        return getattr(self, "task_encoder", None) is not None

    # -- what subclasses vary -------------------------------------------------
    def initial_parameters(self, batch: TaskBatch) -> Params:
        """Where each task starts: ``{name: [T, *shape]}``, or ``[*shape]`` when shared by all."""
        return self.learner.meta_parameters()

    def task_parameters(self, batch: TaskBatch) -> Params:
        """Initial parameters for each task, ``{name: [T, *shape]}``."""
        return self.learner.task_parameters(batch.num_tasks, self.initial_parameters(batch))

    def task_modulation(self, batch: TaskBatch) -> tuple[Mapping[str, Tensor] | None, Tensor | None]:
        """``(taus, embedding)`` for each task; ``(None, None)`` without modulation."""
        return None, None

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The groups whose meta-gradients are clipped separately (``grad_clip_groups: per_group``): one here."""
        return [list(self.parameters())]

    # -- using a trained model on new tasks ------------------------------------
    def adapt(self, support_x: Tensor, support_y: Tensor, steps: int | None = None,
              mode: Tensor | None = None) -> "AdaptedModel":
        """Modulate and adapt to ``T`` new tasks given by their support sets; a predictor for those tasks.

        Exactly what evaluation does (evaluation mode, no meta-gradient kept), so
        the predictor's outputs are those ``mmaml eval`` scores for the same tasks.
        The meta-parameters are not changed.

        Args:
            support_x: ``[T, K, *input_shape]``; support_y: ``[T, K, *target_shape]``
                (one task: a leading dimension of 1, or :meth:`adapt_task`).
            steps: inner steps (default: ``inner_steps``).
            mode: ``[T]`` mode index of each task; needed by Multi-MAML only.
        """
        if support_x.ndim < 2 or support_x.shape[:2] != support_y.shape[:2]:
            raise ValueError(f"support_x [T, K, ...] and support_y [T, K, ...] must agree in T and K, got "
                             f"{tuple(support_x.shape)} and {tuple(support_y.shape)}")
        if mode is None and self.needs_mode:
            raise ValueError(f"{type(self).__name__} starts each task from its mode's initialisation: pass mode=")
        mode = torch.zeros(support_x.shape[0], dtype=torch.long) if mode is None else torch.as_tensor(mode)
        device = next(self.parameters()).device
        batch = TaskBatch(support_x, support_y, support_x[:, :1], support_y[:, :1], mode).to(device)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = self.run_from(batch, self.initial_parameters(batch), steps, create_graph=False)
        finally:
            self.train(was_training)
        return AdaptedModel(self, out.adapted, out.taus, out.embedding)

    def adapt_task(self, support_x: Tensor, support_y: Tensor, steps: int | None = None,
                   mode: int | None = None) -> "AdaptedModel":
        """:meth:`adapt` for one task: ``support_x [K, *input_shape]``; the predictor maps ``[Q, ...]`` to ``[Q, ...]``."""
        modes = None if mode is None else torch.tensor([int(mode)])
        adapted = self.adapt(support_x[None], support_y[None], steps, modes)
        adapted.single = True
        return adapted

    # -- the algorithm --------------------------------------------------------
    def forward(
        self,
        batch: TaskBatch,
        steps: int | None = None,
        create_graph: bool | None = None,
        with_prior: bool = False,
    ) -> MetaOutput:
        """Modulate, adapt on the support set, predict the query set.

        Args:
            batch: the tasks.
            steps: inner steps (default: ``inner_steps``).
            create_graph: second-order meta-gradient (default: ``not first_order``);
                pass False at evaluation, where no meta-gradient is needed.
            with_prior: also score the prior (post-modulation) on the query set.
        """
        return self.run_from(batch, self.initial_parameters(batch), steps, create_graph, with_prior)

    def run_from(
        self,
        batch: TaskBatch,
        params: Params,
        steps: int | None = None,
        create_graph: bool | None = None,
        with_prior: bool = False,
    ) -> MetaOutput:
        """:meth:`forward` from the given initial parameters (``[T, *shape]`` or shared ``[*shape]``)."""
        steps = self.inner_steps if steps is None else steps
        create_graph = (not self.first_order) if create_graph is None else create_graph
        taus, embedding = self.task_modulation(batch)
        kind = self.modulation_kind

        def forward_fn(p: Params, x: Tensor) -> Tensor:
            return self.learner(p, x, taus, kind)

        prior_pred = prior_loss = None
        if with_prior:
            prior_pred = forward_fn(params, batch.query_x)
            prior_loss = self.loss_fn(prior_pred, batch.query_y)
        if not torch.is_grad_enabled():
            # Evaluation: adapt a detached copy; no meta-gradient is built.
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
            create_graph = False
        with torch.enable_grad():
            adapted = self.learner.adapt(
                params,
                batch.support_x,
                batch.support_y,
                self.loss_fn,
                steps,
                self.inner_lr,
                self.inner_grad_clip,
                create_graph=create_graph,
                taus=taus,
                kind=kind,
            )
        pred = forward_fn(adapted, batch.query_x)
        return MetaOutput(
            query_loss=self.loss_fn(pred, batch.query_y),
            prior_query_loss=prior_loss,
            query_pred=pred,
            prior_query_pred=prior_pred,
            adapted=adapted,
            taus=taus,
            embedding=embedding,
        )


class AdaptedModel:
    """A meta-learner adapted to ``T`` tasks: call it on query inputs ``[T, Q, *input_shape]`` of those tasks.

    Holds the adapted per-task parameters and modulation (no autograd graph); the
    meta-learner's own parameters are untouched. Made by :meth:`GradientMetaLearner.adapt`.

    Attributes:
        embedding: ``[T, E]`` the task embeddings (MuMoMAML), or None.
        single: made by ``adapt_task``: calls take and return one task's ``[Q, ...]``.
    """

    def __init__(self, model: GradientMetaLearner, params: AnyParams, taus: Mapping[str, Tensor] | None,
                 embedding: Tensor | None) -> None:
        self.model = model
        self.params = params
        self.taus = taus
        self.embedding = embedding
        self.single = False

    def __call__(self, query_x: Tensor) -> Tensor:
        """Predictions ``[T, Q, *output_shape]`` (logits for classification) for ``query_x [T, Q, ...]``."""
        x = query_x[None] if self.single else query_x
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                pred = self.model.learner(self.params, x.to(device), self.taus, self.model.modulation_kind)
        finally:
            self.model.train(was_training)
        return pred[0] if self.single else pred
