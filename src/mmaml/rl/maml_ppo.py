"""A first-order-optimizer outer loop for meta-RL: the clipped surrogate with Adam (PPO's, as in ProMP).

The seed paper trains its meta-RL models with MAML-TRPO (:mod:`mmaml.rl.maml_trpo`);
the authors' released code used ProMP (Rothfuss et al. 2019) instead, whose outer
loop is PPO's: a few epochs of Adam on the clipped importance-weighted surrogate

    L(theta) = -mean_t min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t),
    r_t = pi'_theta(a_t | s_t) / pi_old(a_t | s_t),

on the episodes of each task's adapted policy ``pi'_theta``, which depends on the
meta-parameters through the inner steps (redone, differentiably, every epoch) and,
for MuMoMAML, through tau. With ``outer_optimizer: ppo`` the inner steps are the
vanilla policy gradient's (see :mod:`mmaml.rl.metalearner`), so that TRPO and this
loop differ in the outer optimizer alone. ``outer_optimizer: promp`` is ProMP as the
authors' code runs it: the inner steps on the LVC objective (whose meta-gradient keeps
the pre-update samples' dependence on the parameters to first order,
:func:`mmaml.rl.metalearner.lvc_loss`) and, added to the clipped surrogate, the mean
over inner steps of ``KL(pi_sampled || pi_current)`` on each step's episodes, times
``promp_inner_kl`` (5e-4).

``prior_return_weight`` (0 by default, the paper's objective) adds that weight times the
same clipped surrogate of the pre-update policy on its own step-0 episodes: the
modulated prior's return, "after modulation", which the post-update objective leaves
unscored (MAML: the initial policy's).

Why offer it: TRPO moves all parameters along one natural-gradient direction scaled
to a KL bound, so parameters whose effect on the policy is small per unit of
gradient (the encoder's, which act through tau) move little; Adam normalises each
parameter's step by its own gradient scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mmaml.engine.distributed import SINGLE
from mmaml.rl.maml_trpo import OuterStepStats, episode_ratios, importance_ratios, surrogate
from mmaml.rl.config import RLConfig
from mmaml.rl.metalearner import PolicyMetaLearner, Rollouts, adaptation_path
from mmaml.rl.policy import kl_divergence


@dataclass
class PPOSettings:
    """The outer loop's settings for PPO and ProMP, from a run config (:meth:`of`)."""

    epochs: int
    clip: float
    lr: float
    inner_kl: float  # ProMP: the coefficient of the inner-KL penalty (0: PPO's objective alone)
    prior_weight: float = 0.0  # the weight of the pre-update policy's clipped surrogate on its step-0 episodes

    @classmethod
    def of(cls, config: RLConfig) -> "PPOSettings":
        """``config``'s settings: ``ppo_epochs``, ``ppo_clip``, ``ppo_lr``, ``prior_return_weight`` and, for ProMP,
        ``promp_inner_kl``."""
        return cls(config.ppo_epochs, config.ppo_clip, config.ppo_lr,
                   config.promp_inner_kl if config.outer_optimizer == "promp" else 0.0, config.prior_return_weight)


def clipped(ratio: torch.Tensor, advantages: torch.Tensor, clip: float) -> torch.Tensor:
    """``-mean(min(r A, clip(r, 1 - clip, 1 + clip) A))`` of ratios and advantages of one shape (a scalar)."""
    return -torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()


def clipped_surrogate(model: PolicyMetaLearner, rollouts: Rollouts, clip: float, create_graph: bool,
                      adapted: tuple | None = None) -> torch.Tensor:
    """The clipped surrogate (:func:`clipped`) over every scored step of every task (a scalar)."""
    ratio, advantages, _ = importance_ratios(model, rollouts, create_graph, adapted)
    return clipped(ratio, advantages, clip)


def prior_surrogate(rollouts: Rollouts, prior: torch.Tensor, clip: float) -> torch.Tensor:
    """The clipped surrogate of the pre-update policy on the step-0 episodes (a scalar), from its output there,
    ``prior [T, N, 2A]`` (as the first inner step computed it)."""
    return clipped(*episode_ratios(rollouts.steps[0], prior), clip)


def inner_kl(recorded: list[torch.Tensor], current: list[torch.Tensor]) -> torch.Tensor:
    """ProMP's inner-KL penalty: the mean over inner steps of the mean ``KL(recorded || current)`` of each step."""
    return torch.stack([kl_divergence(r, c).mean() for r, c in zip(recorded, current)]).mean()


def promp_objective(model: PolicyMetaLearner, rollouts: Rollouts, settings: PPOSettings, recorded: list,
                    create_graph: bool) -> torch.Tensor:
    """The clipped surrogate of the adapted policies plus ``settings.inner_kl`` times the inner-KL penalty
    (``recorded``: the output ``[T, N, 2A]`` of each inner step's policy on its episodes when they were
    sampled, as :func:`adaptation_path`'s ``predictions`` gives it) plus ``settings.prior_weight`` times
    :func:`prior_surrogate`. The penalty and the prior's term reuse the outputs the inner steps computed,
    rather than a second pass over their episodes."""
    current: list[torch.Tensor] = []
    path = adaptation_path(model, rollouts, create_graph, current)
    loss = clipped_surrogate(model, rollouts, settings.clip, create_graph, path[-1])
    if settings.inner_kl and recorded:
        loss = loss + settings.inner_kl * inner_kl(recorded, current)
    if settings.prior_weight:
        loss = loss + settings.prior_weight * prior_surrogate(rollouts, current[0], settings.clip)
    return loss


def ppo_step(model: PolicyMetaLearner, rollouts: Rollouts, settings: PPOSettings, optimizer: torch.optim.Optimizer,
             dist=None) -> OuterStepStats:
    """``settings.epochs`` Adam steps of ``optimizer`` (over all of ``model``'s parameters) on the clipped surrogate.

    Distributed: ``rollouts`` hold this rank's tasks; each epoch's gradient is averaged
    over the ranks (equal shares), so every rank takes the same step. An epoch whose
    loss or gradient is not finite ends the update without stepping (earlier epochs'
    steps stay). Returns the unclipped surrogate before and after, and the mean KL
    between the adapted policies before and after (``skipped_epochs``: the epochs
    not taken).
    """

    dist = SINGLE if dist is None else dist
    params = [p for p in model.parameters() if p.requires_grad]
    second_order = not model.first_order
    with torch.enable_grad():
        at_sampling: list[torch.Tensor] = []  # each inner step's policy as it sampled (nothing has moved yet)
        path = adaptation_path(model, rollouts, False, at_sampling)
        loss, _, old = surrogate(model, rollouts, None, create_graph=False, adapted=path[-1])
    recorded = [p.detach() for p in at_sampling] if settings.inner_kl else []
    loss_before, old = dist.mean(float(loss.detach())), old.detach()
    taken, finite = 0, math.isfinite(loss_before)
    for _ in range(settings.epochs if finite else 0):
        optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = promp_objective(model, rollouts, settings, recorded, create_graph=second_order)
            ok = math.isfinite(dist.mean(float(loss.detach())))
            if ok:
                loss.backward()
        dist.average_gradients(params)
        ok = ok and all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in params)
        if not ok:
            finite = False
            break
        optimizer.step()
        taken += 1
    optimizer.zero_grad(set_to_none=True)
    with torch.enable_grad():
        loss_after, kl, _ = surrogate(model, rollouts, old, create_graph=False)
    return OuterStepStats(loss_before, dist.mean(float(loss_after.detach())), dist.mean(float(kl.detach())),
                          0, taken > 0, finite, skipped_epochs=settings.epochs - taken)
