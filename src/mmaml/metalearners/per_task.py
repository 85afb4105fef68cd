"""A plain per-task loop over the same computation as the batched meta-learners.

It runs every task on its own (no task dimension, no vmap). It is the
reference that the batched path is checked against in the tests and timed
against in the benchmarks; it is not meant for training.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmaml.core.inner_loop import sgd_step
from mmaml.metalearners.base import GradientMetaLearner
from mmaml.tasks.batch import TaskBatch


def per_task_query_losses(model: GradientMetaLearner, batch: TaskBatch, steps: int | None = None) -> Tensor:
    """Post-adaptation query loss of each task, computed task by task: ``[T]``.

    Differentiable with respect to the meta-parameters exactly as the batched
    ``model(batch).query_loss`` is (second order unless ``model.first_order``).
    """
    steps = model.inner_steps if steps is None else steps
    create_graph = not model.first_order
    losses = []
    for t in range(batch.num_tasks):
        task = batch.select(t)
        params = {k: v[0] for k, v in model.task_parameters(task).items()}
        taus, _ = model.task_modulation(task)
        taus = None if taus is None else {k: v[0] for k, v in taus.items()}

        def loss(p, x, y):
            pred = model.learner.forward_single(p, x, taus, model.modulation_kind)
            return model.loss_fn(pred.unsqueeze(0), y.unsqueeze(0))[0]

        for _ in range(steps):
            grads = torch.autograd.grad(
                loss(params, task.support_x[0], task.support_y[0]), list(params.values()), create_graph=create_graph
            )
            params = sgd_step(params, grads, model.inner_lr, model.inner_grad_clip)
        losses.append(loss(params, task.query_x[0], task.query_y[0]))
    return torch.stack(losses)
