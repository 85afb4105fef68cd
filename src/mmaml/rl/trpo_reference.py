"""The MAML-TRPO step as first written, kept as the reference that the default step is tested against.

:func:`reference_trpo_step` builds a second graph for the Fisher's tasks (when
they are a subset), and measures the step's curvature with an extra
Fisher-vector product. :func:`mmaml.rl.maml_trpo.trpo_step` shares one graph
between the gradient and the Fisher and takes the curvature from conjugate
gradient's own products; the tests require both to take the same step to float
precision, and ``benchmarks/bench_rl.py --reference`` times the two in one run.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmaml.rl.maml_trpo import TRPOSettings, OuterStepStats, fisher_tasks, fisher_vector_product, surrogate
from mmaml.rl.metalearner import PolicyMetaLearner, Rollouts
from mmaml.rl.trpo import assign, backtracking_line_search, conjugate_gradient, flatten
from mmaml.engine.distributed import SINGLE


def reference_trpo_step(model: PolicyMetaLearner, rollouts: Rollouts, settings: TRPOSettings, dist=None,
                        first_task: int = 0, num_tasks: int | None = None) -> OuterStepStats:
    """One MAML-TRPO update of all of ``model``'s parameters (in place).

    Distributed (``dist`` a :class:`~mmaml.engine.distributed.Distributed`): ``rollouts``
    hold this rank's tasks ``first_task ..`` of the meta-batch's ``num_tasks``; the
    gradient, every Fisher-vector product and the line search's surrogate and KL are
    averaged over the ranks, so every rank takes the single process's step.
    """
    dist = SINGLE if dist is None else dist
    num_tasks = rollouts.num_tasks if num_tasks is None else num_tasks
    params = [p for p in model.parameters() if p.requires_grad]
    second_order = not model.first_order
    with torch.enable_grad():
        loss, _, pred = surrogate(model, rollouts, None, create_graph=second_order)
        subset = fisher_tasks(num_tasks, settings.fisher_subsample)  # over the whole meta-batch
        mine = subset[(subset >= first_task) & (subset < first_task + rollouts.num_tasks)] - first_task
        fisher_graph = second_order and settings.fisher_second_order
        reuse = len(subset) == num_tasks and fisher_graph == second_order
        grads = flatten(torch.autograd.grad(loss, params, retain_graph=reuse, allow_unused=True), params)
        dist.average_(grads)
        if reuse:  # the Fisher of every task: the graph of the loss serves
            fisher_pred, share = pred, rollouts.num_tasks / num_tasks
        elif len(mine):
            _, _, fisher_pred = surrogate(model, rollouts.select(mine), None, create_graph=fisher_graph)
            share = len(mine) / len(subset)
        else:  # none of the Fisher's tasks is on this rank
            fisher_pred, share = None, 0.0
        local = (fisher_vector_product(fisher_pred, params, 0.0) if fisher_pred is not None
                 else (lambda v: torch.zeros_like(v)))

        def fisher_vector(v: Tensor) -> Tensor:
            # the mean over the subset's tasks: each rank's mean weighted by its share of them, summed
            return dist.sum_(local(v) * share) + settings.cg_damping * v

        direction = conjugate_gradient(fisher_vector, grads.detach(), settings.cg_iterations)
        curvature = float(direction @ fisher_vector(direction))
    loss_before = dist.mean(float(loss.detach()))
    old_pred = pred.detach()
    if not (curvature > 0 and math.isfinite(curvature)) or not torch.isfinite(direction).all():
        return OuterStepStats(loss_before, loss_before, 0.0, 0, False, math.isfinite(loss_before) and math.isfinite(curvature))
    step = direction * math.sqrt(2 * settings.max_kl / curvature)
    start = torch.cat([p.detach().reshape(-1) for p in params])

    def evaluate(candidate: Tensor) -> tuple[float, float]:
        assign(params, candidate)
        with torch.enable_grad():
            new_loss, new_kl, _ = surrogate(model, rollouts, old_pred, create_graph=False)
        return dist.mean(float(new_loss.detach())), dist.mean(float(new_kl.detach()))

    accepted, backtracks, loss_after, kl_after = backtracking_line_search(
        evaluate, start, step, loss_before, settings.max_kl, settings.line_search_steps, settings.line_search_ratio)
    assign(params, accepted)
    return OuterStepStats(loss_before, loss_after, kl_after, backtracks, backtracks < settings.line_search_steps)
