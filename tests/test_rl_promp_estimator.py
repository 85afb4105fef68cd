"""The meta-gradient estimators against the truth, on a problem whose expected post-update return has a
closed form.

A one-dimensional Gaussian policy ``N(theta, sigma^2)`` with a fixed sigma and the reward ``-(a - c)^2``;
one pre-update sample per task, whose raw reward is its advantage; the inner step
``theta' = theta + alpha * (a - theta) / sigma^2 * r(a)``. The expected post-update return is then
``J = -d^2 + 4 alpha d^2 - alpha^2 (d^4 + 18 d^2 sigma^2 + 15 sigma^4) / sigma^2 - sigma^2`` with
``d = theta - c``, whose derivative is the true meta-gradient.

The estimators' expectations over the pre- and post-update samples are taken exactly, by Gauss-Hermite
quadrature (the integrands are polynomials of low degree): each task is one quadrature node of the
pre-update sample, each post-update "episode" one node of the post-update sample, the weights folded
into the advantages, so the surrogate's gradient *is* the mean of the sampled meta-gradients, free of
Monte Carlo noise. MAML-TRPO's surrogate drops the pre-update samples' dependence on theta, so its error
falls linearly with the inner rate; ProMP's LVC inner objective keeps that dependence to first order,
so its error falls as the rate squared.
"""

import math

import numpy as np
import torch
from torch import nn

from mmaml.core.learner import Learner
from mmaml.rl.episodes import Episodes
from mmaml.rl.maml_trpo import surrogate
from mmaml.rl.metalearner import PolicyMetaLearner, Rollouts
from mmaml.rl.policy import log_prob

THETA, GOAL, SIGMA, NODES = 0.3, 1.0, 0.5, 24


class GaussianMean(nn.Module):
    """``obs [N, 1] -> [N, 2]``: the mean ``theta`` (the one parameter) and a fixed log-std."""

    def __init__(self):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([THETA], dtype=torch.float64))
        self.register_buffer("log_std", torch.tensor([math.log(SIGMA)], dtype=torch.float64))

    def forward(self, obs):
        return torch.cat([self.theta.expand(obs.shape[0], 1), self.log_std.expand(obs.shape[0], 1)], dim=-1)


def reward(a):
    return -(a - GOAL) ** 2


def episodes(actions, means, advantages):
    """``actions [T, E]`` of one-step episodes sampled from ``N(means [T, 1], sigma^2)``."""
    t, e = actions.shape
    pred = torch.stack([means.expand(t, e), torch.full((t, e), math.log(SIGMA), dtype=torch.float64)], -1)
    return Episodes(observations=torch.zeros(t, e, 1, 1, dtype=torch.float64), actions=actions[..., None, None],
                    rewards=reward(actions)[..., None], log_probs=log_prob(pred, actions[..., None])[..., None],
                    positions=torch.zeros(t, e, 2, 2, dtype=torch.float64), advantages=advantages[..., None])


def expected_meta_gradient(alpha: float, objective: str) -> float:
    model = PolicyMetaLearner(Learner(GaussianMean(), low_rank_linear=False), inner_lr=alpha,
                              inner_objective=objective)
    nodes, weights = np.polynomial.hermite_e.hermegauss(NODES)
    eps = torch.tensor(nodes, dtype=torch.float64)
    w = torch.tensor(weights / weights.sum(), dtype=torch.float64)
    pre_actions = (THETA + SIGMA * eps)[:, None]  # task k: one pre-update sample at node k
    pre = episodes(pre_actions, torch.full((NODES, 1), THETA, dtype=torch.float64), reward(pre_actions))
    theta = {"theta": model.learner.model.theta.detach().clone().requires_grad_()}
    adapted = model.inner_step(theta, None, pre, create_graph=False)["theta"].detach()  # [T, 1]
    post_actions = adapted + SIGMA * eps[None, :]  # task k, episode j: post-update sample at node j
    # the surrogate averages over tasks and episodes: fold both quadrature weights into the advantages
    weight = NODES * w[:, None] * NODES * w[None, :]
    post = episodes(post_actions, adapted, weight * reward(post_actions))
    rollouts = Rollouts(torch.zeros(NODES, 1), torch.zeros(NODES, dtype=torch.long), None, [pre, post])
    loss, _, _ = surrogate(model, rollouts, None, create_graph=True)
    (grad,) = torch.autograd.grad(-loss, [model.learner.model.theta])
    return float(grad)


def true_meta_gradient(alpha: float) -> float:
    d, s2 = THETA - GOAL, SIGMA ** 2
    return -2 * d + 8 * alpha * d - alpha ** 2 * (4 * d ** 3 + 36 * d * s2) / s2


def test_the_quadrature_reproduces_the_closed_form_at_zero_inner_rate():
    # alpha -> 0: no inner step, both estimators are the plain policy gradient of -(theta - c)^2 - sigma^2
    for objective in ("reinforce", "lvc"):
        assert math.isclose(expected_meta_gradient(1e-9, objective), true_meta_gradient(0.0), rel_tol=1e-6)


def test_lvc_error_falls_as_the_rate_squared_and_the_trpo_surrogates_linearly():
    rates = [0.001, 0.002, 0.004, 0.008]
    errors = {objective: [abs(expected_meta_gradient(a, objective) - true_meta_gradient(a)) for a in rates]
              for objective in ("reinforce", "lvc")}
    slope = {k: float(np.polyfit(np.log(rates), np.log(v), 1)[0]) for k, v in errors.items()}
    assert 0.9 < slope["reinforce"] < 1.1, (slope, errors)
    assert 1.9 < slope["lvc"] < 2.1, (slope, errors)
    assert all(e_lvc < e_trpo for e_lvc, e_trpo in zip(errors["lvc"], errors["reinforce"]))
