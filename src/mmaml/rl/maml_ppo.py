"""A first-order-optimizer outer loop for meta-RL: the clipped surrogate with Adam (PPO's, as in ProMP).

The seed paper trains its meta-RL models with MAML-TRPO (:mod:`mmaml.rl.maml_trpo`);
the authors' released code used ProMP (Rothfuss et al. 2019) instead, whose outer
loop is PPO's: a few epochs of Adam on the clipped importance-weighted surrogate

    L(theta) = -mean_t min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t),
    r_t = pi'_theta(a_t | s_t) / pi_old(a_t | s_t),

on the episodes of each task's adapted policy ``pi'_theta``, which depends on the
meta-parameters through the inner steps (redone, differentiably, every epoch) and,
for MuMoMAML, through tau. The inner steps are this project's (vanilla policy
gradient, see :mod:`mmaml.rl.metalearner`), not ProMP's low-variance estimator, so
that TRPO and this loop differ in the outer optimizer alone.

Why offer it: TRPO moves all parameters along one natural-gradient direction scaled
to a KL bound, so parameters whose effect on the policy is small per unit of
gradient (the encoder's, which act through tau) move little; Adam normalises each
parameter's step by its own gradient scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mmaml.rl.maml_trpo import TRPOStats, importance_ratios, surrogate
from mmaml.rl.metalearner import PolicyMetaLearner, Rollouts


@dataclass
class PPOSettings:
    epochs: int = 5
    clip: float = 0.1
    lr: float = 1e-3


def clipped_surrogate(model: PolicyMetaLearner, rollouts: Rollouts, clip: float, create_graph: bool) -> torch.Tensor:
    """``-mean(min(r A, clip(r, 1 - clip, 1 + clip) A))`` over every scored step of every task (a scalar)."""
    ratio, advantages, _ = importance_ratios(model, rollouts, create_graph)
    return -torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()


def ppo_step(model: PolicyMetaLearner, rollouts: Rollouts, settings: PPOSettings, optimizer: torch.optim.Optimizer,
             dist=None) -> TRPOStats:
    """``settings.epochs`` Adam steps of ``optimizer`` (over all of ``model``'s parameters) on the clipped surrogate.

    Distributed: ``rollouts`` hold this rank's tasks; each epoch's gradient is averaged
    over the ranks (equal shares), so every rank takes the same step. An epoch whose
    loss or gradient is not finite ends the update without stepping (earlier epochs'
    steps stay). Returns the unclipped surrogate before and after, and the mean KL
    between the adapted policies before and after (``backtracks`` counts the epochs
    not taken).
    """
    from mmaml.training.distributed import SINGLE

    dist = SINGLE if dist is None else dist
    params = [p for p in model.parameters() if p.requires_grad]
    second_order = not model.first_order
    with torch.enable_grad():
        loss, _, old = surrogate(model, rollouts, None, create_graph=False)
    loss_before, old = dist.mean(float(loss.detach())), old.detach()
    taken, finite = 0, math.isfinite(loss_before)
    for _ in range(settings.epochs if finite else 0):
        optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = clipped_surrogate(model, rollouts, settings.clip, create_graph=second_order)
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
    return TRPOStats(loss_before, dist.mean(float(loss_after.detach())), dist.mean(float(kl.detach())),
                     settings.epochs - taken, taken > 0, finite)
