"""MAML-TRPO: the outer loop of meta-RL (Finn et al. 2017; Schulman et al. 2015).

The objective is the mean over tasks of the importance-weighted surrogate
``-mean(pi'(a|s) / pi_old(a|s) * A)`` on the episodes of each task's *adapted*
policy ``pi'``, which depends on the meta-parameters through the inner steps
(second order) and, for MuMoMAML, through tau (encoder and modulation network).
The step direction solves ``F x = g`` by conjugate gradient, ``F`` the Hessian of
the mean KL divergence between the old and new adapted policies (exact
Hessian-vector products through the inner steps, see
:func:`fisher_vector_product`); the step is scaled to the KL bound and
backtracked until the surrogate improves within it. All of the policy's,
encoder's and modulation network's parameters move together.

The Fisher-vector products are third-order through the inner steps and
dominate the cost of a step, so, as common TRPO implementations do with a
subsample of the steps, they are computed on an evenly spaced subset of the
tasks (``fisher_subsample``, a fraction; the tasks come in mode blocks, so the
subset keeps every mode). The gradient, the surrogate and the KL that the line
search enforces always use every task. The subset's part of the surrogate gets
an autograd graph of its own, which the gradient and then every Fisher-vector
product use (the graph is built once per step), and the step's curvature comes
from conjugate gradient's own products instead of one more product; the step
before these two savings is kept in :mod:`mmaml.rl.trpo_reference` and the tests
require the same step from both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mmaml.rl.config import RLConfig
from mmaml.rl.episodes import Episodes
from mmaml.rl.metalearner import PolicyMetaLearner, Rollouts, adapted_parameters
from mmaml.rl.policy import kl_divergence, log_prob
from mmaml.rl.trpo import assign, backtracking_line_search, conjugate_gradient_with_product, flatten
from mmaml.engine.distributed import SINGLE, Distributed


@dataclass
class TRPOSettings:
    """MAML-TRPO's outer-step settings, from a run config (:meth:`of`)."""

    max_kl: float
    cg_iterations: int
    cg_damping: float
    line_search_steps: int
    line_search_ratio: float
    fisher_subsample: float
    fisher_second_order: bool

    @classmethod
    def of(cls, config: RLConfig) -> "TRPOSettings":
        """``config``'s settings of the same names."""
        return cls(config.max_kl, config.cg_iterations, config.cg_damping, config.line_search_steps,
                   config.line_search_ratio, config.fisher_subsample, config.fisher_second_order)


@dataclass
class OuterStepStats:
    """What one outer step did: the surrogate before and after, the KL between the adapted policies before and
    after, TRPO's line-search ``backtracks`` or PPO's ``skipped_epochs`` (0 for the other), whether the step
    was taken, and whether everything was finite."""

    loss_before: float
    loss_after: float
    kl: float
    backtracks: int
    accepted: bool
    finite: bool = True
    skipped_epochs: int = 0


def importance_ratios(model: PolicyMetaLearner, rollouts: Rollouts, create_graph: bool,
                      adapted: tuple | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(ratio [T, N], advantages [T, N], pred [T, N, 2A])`` on the scored episodes.

    ``pred`` is the adapted policies' output, redone from the current meta-parameters
    (differentiably; or from ``adapted``, the ``(params, taus)`` of :func:`adapted_parameters`
    when the caller has them); ``ratio`` is ``pi'(a|s) / pi_old(a|s)`` of every scored step.
    """
    params, taus = adapted_parameters(model, rollouts, create_graph) if adapted is None else adapted
    scored = rollouts.steps[-1]
    obs, _ = scored.flat()
    pred = model.learner(params, obs, taus, model.modulation_kind)
    return (*episode_ratios(scored, pred), pred)


def episode_ratios(episodes: Episodes, pred: Tensor) -> tuple[Tensor, Tensor]:
    """``(ratio [T, N], advantages [T, N])`` of the policy whose output on ``episodes`` is ``pred [T, N, 2A]``
    against the policy that sampled them (its recorded log-densities)."""
    _, actions = episodes.flat()
    t = episodes.num_tasks
    return torch.exp(log_prob(pred, actions) - episodes.log_probs.reshape(t, -1)), episodes.advantages.reshape(t, -1)


def surrogate(model: PolicyMetaLearner, rollouts: Rollouts, old_pred: Tensor | None,
              create_graph: bool, adapted: tuple | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(loss, kl, pred)`` of the adapted policies on the scored episodes.

    ``pred [T, N, 2A]`` is the adapted policies' output; ``kl`` is measured
    against ``old_pred`` (against ``pred`` itself, detached, when None: zero in
    value, with the Fisher as Hessian). ``adapted``: as for :func:`importance_ratios`.
    """
    ratio, advantages, pred = importance_ratios(model, rollouts, create_graph, adapted)
    loss = -(ratio * advantages).mean()
    old = pred.detach() if old_pred is None else old_pred
    kl = kl_divergence(old, pred).mean()
    return loss, kl, pred


def fisher_vector_product(pred: Tensor, params: list[Tensor], damping: float):
    """``v -> (F + damping) v``, ``F`` the Hessian of the mean KL between the policies ``pred [T, N, 2A]`` and themselves.

    At the current point that Hessian is exactly ``J^T M J`` (``J`` the Jacobian
    of ``pred`` with respect to ``params``, through the inner steps; ``M`` the
    Fisher metric of a diagonal Gaussian in (mean, log-std): ``1 / std^2`` and 2,
    over the number of samples), so each product takes a Jacobian-vector product
    (the double-backward trick, through the graph of ``J^T u``, linear in ``u``)
    and a vector-Jacobian product, instead of differentiating the KL's gradient
    once more: the same result for about half the work.
    """
    a = pred.shape[-1] // 2
    log_std = pred.detach()[..., a:]
    metric = torch.cat([torch.exp(-2 * log_std), torch.full_like(log_std, 2.0)], dim=-1) / (pred.numel() // pred.shape[-1])
    u = torch.zeros_like(pred, requires_grad=True)
    jtu = flatten(torch.autograd.grad(pred, params, u, create_graph=True, allow_unused=True), params)

    def product(v: Tensor) -> Tensor:
        jv = torch.autograd.grad(jtu, u, v, retain_graph=True)[0]
        fv = torch.autograd.grad(pred, params, metric * jv, retain_graph=True, allow_unused=True)
        return flatten(fv, params) + damping * v

    return product


def fisher_tasks(num_tasks: int, fraction: float) -> Tensor:
    """Indices of an evenly spaced subset of ``max(1, round(fraction * num_tasks))`` tasks."""
    count = min(num_tasks, max(1, round(fraction * num_tasks)))
    return torch.linspace(0, num_tasks - 1, count).round().long().unique()


def split_for_fisher(model: PolicyMetaLearner, rollouts: Rollouts, fisher: Tensor,
                     create_graph: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(loss, pred [T, N, 2A], fisher_pred)``: the surrogate of every task, its graph built in two parts.

    The tasks at ``fisher`` (local indices) get a graph of their own, whose output
    ``fisher_pred`` the Fisher-vector products then reuse; the others one more.
    The loss is their mean weighted by task count (every task scores as many
    steps), i.e. the surrogate of all tasks. ``fisher_pred`` is None when no
    task is at ``fisher``.
    """
    t = rollouts.num_tasks
    if len(fisher) in (0, t):
        loss, _, pred = surrogate(model, rollouts, None, create_graph)
        return loss, pred, (pred if len(fisher) == t else None)
    rest = torch.ones(t, dtype=torch.bool)
    rest[fisher] = False
    rest = rest.nonzero().squeeze(1)
    loss_f, _, pred_f = surrogate(model, rollouts.select(fisher), None, create_graph)
    loss_r, _, pred_r = surrogate(model, rollouts.select(rest), None, create_graph)
    loss = (loss_f * len(fisher) + loss_r * len(rest)) / t
    pred = pred_f.new_empty((t, *pred_f.shape[1:]))
    pred[fisher.to(pred.device)] = pred_f.detach()
    pred[rest.to(pred.device)] = pred_r.detach()
    return loss, pred, pred_f


def trpo_step(model: PolicyMetaLearner, rollouts: Rollouts, settings: TRPOSettings, dist: Distributed | None = None,
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
    subset = fisher_tasks(num_tasks, settings.fisher_subsample)  # over the whole meta-batch
    mine = subset[(subset >= first_task) & (subset < first_task + rollouts.num_tasks)] - first_task
    share = len(mine) / len(subset)  # this rank's part of the Fisher's mean over the subset
    shared_graph = second_order == settings.fisher_second_order or not second_order
    with torch.enable_grad():
        # 1. the surrogate of every task and its meta-gradient (through the inner steps and tau);
        #    the Fisher's tasks get a graph of their own, kept for the Fisher-vector products
        loss, pred, fisher_pred = split_for_fisher(model, rollouts, mine if shared_graph else mine[:0], second_order)
        grads = flatten(torch.autograd.grad(loss, params, retain_graph=fisher_pred is not None, allow_unused=True),
                        params)
        dist.average_(grads)
        if not shared_graph and len(mine):  # the Fisher at the adapted policy only: a graph without the inner steps'
            _, _, fisher_pred = surrogate(model, rollouts.select(mine), None, create_graph=False)
        local = (fisher_vector_product(fisher_pred, params, 0.0) if fisher_pred is not None
                 else (lambda v: torch.zeros_like(v)))

        def fisher_vector(v: Tensor) -> Tensor:
            # the mean over the subset's tasks: each rank's mean weighted by its share of them, summed
            return dist.sum_(local(v) * share) + settings.cg_damping * v

        # 2. the natural-gradient direction by conjugate gradient, and its curvature from CG's own products
        direction, fisher_direction = conjugate_gradient_with_product(fisher_vector, grads.detach(),
                                                                      settings.cg_iterations)
        curvature = float(direction @ fisher_direction)
    loss_before = dist.mean(float(loss.detach()))
    old_pred = pred.detach()
    del loss, fisher_pred, local  # free the graphs before the line search
    if not (curvature > 0 and math.isfinite(curvature)) or not torch.isfinite(direction).all():
        return OuterStepStats(loss_before, loss_before, 0.0, 0, False, math.isfinite(loss_before) and math.isfinite(curvature))

    # 3. the step scaled to the trust region, backtracked on the sampled episodes until the surrogate improves
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
