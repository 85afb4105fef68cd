"""ProMP's outer objective: the inner-KL penalty against a hand computation, and what the objective adds to PPO's.

(The LVC inner objective's meta-gradient is tested against the truth in test_rl_promp_estimator.py.)
"""

import torch
from torch.distributions import Independent, Normal, kl_divergence as torch_kl

from mmaml.rl.config import RLConfig
from mmaml.core.learner import Learner
from mmaml.rl.envs.registry import make_batched, make_goals
from mmaml.rl.maml_ppo import PPOSettings, clipped_surrogate, inner_kl, promp_objective
from mmaml.rl.metalearner import PolicyMetaLearner, adaptation_path, rollout_adaptation
from mmaml.rl.policy import GaussianMLPPolicy, log_prob

NAMES = ["model.hidden.0.weight", "model.hidden.0.bias", "model.mean.weight", "model.mean.bias", "model.log_std"]


def hand_policy(params, obs):
    h = torch.tanh(obs @ params["model.hidden.0.weight"].T + params["model.hidden.0.bias"])
    mean = h @ params["model.mean.weight"].T + params["model.mean.bias"]
    return torch.cat([mean, params["model.log_std"].expand_as(mean)], -1)


def step_predictions(model, rollouts, path):
    """Each inner step's policy on its own episodes, task by task with :func:`hand_policy` (unmodulated)."""
    theta = dict(model.learner.named_parameters())
    outputs = []
    for (params, _), episodes in zip(path[:-1], rollouts.steps[:-1]):
        obs, _ = episodes.flat()
        params = {f"model.{n}": p for n, p in params.items()}
        of_task = lambda t: {n: p if p.dim() == theta[n].dim() else p[t] for n, p in params.items()}  # noqa: E731
        outputs.append(torch.stack([hand_policy(of_task(t), obs[t]) for t in range(obs.shape[0])]))
    return outputs


def test_inner_kl_penalty_is_the_mean_kl_of_each_steps_sampling_policy_to_the_current_one():
    torch.manual_seed(0)
    env = make_batched("navigation-bimodal")
    model = PolicyMetaLearner(Learner(GaussianMLPPolicy(2, 2, (8,)), low_rank_linear=False), inner_lr=0.1,
                              inner_objective="lvc")
    g = torch.Generator().manual_seed(1)
    goals, mode = make_goals("navigation-bimodal").sample(3, g)
    rollouts = rollout_adaptation(model, env, goals, mode, 4, 2, g)
    recorded = [p.detach() for p in step_predictions(model, rollouts, adaptation_path(model, rollouts, False))]
    at_sampling = inner_kl(recorded, step_predictions(model, rollouts, adaptation_path(model, rollouts, False)))
    assert float(at_sampling.detach()) < 1e-10
    with torch.no_grad():  # the meta-parameters move, as after an Adam epoch
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    penalty = inner_kl(recorded, step_predictions(model, rollouts, adaptation_path(model, rollouts, True)))
    # by hand: each task's policy at steps 0 and 1, its LVC inner steps written out, KL from torch.distributions
    theta = dict(model.learner.named_parameters())
    dist = lambda p: Independent(Normal(p[..., :2], p[..., 2:].exp()), 1)  # noqa: E731
    per_step = [[], []]
    for t in range(3):
        params = dict(theta)
        for k in range(2):
            ep = rollouts.steps[k]
            obs, act = ep.observations[t].reshape(-1, 2), ep.actions[t].reshape(-1, 2)
            pred = hand_policy(params, obs)
            per_step[k].append(torch_kl(dist(recorded[k][t]), dist(pred)).mean())
            ratio = torch.exp(log_prob(pred, act) - ep.log_probs[t].reshape(-1))
            loss = -(ratio * ep.advantages[t].reshape(-1)).mean()
            grads = torch.autograd.grad(loss, [params[n] for n in NAMES], create_graph=True)
            params = {n: params[n] - 0.1 * gr for n, gr in zip(NAMES, grads)}
    expected = torch.stack([torch.stack(s).mean() for s in per_step]).mean()
    torch.testing.assert_close(penalty, expected, rtol=1e-5, atol=1e-8)
    assert float(penalty.detach()) > 1e-4
    # the ProMP objective is PPO's clipped surrogate plus the coefficient times this penalty
    settings = PPOSettings.of(RLConfig(outer_optimizer="promp", ppo_clip=0.1, promp_inner_kl=5e-4))
    objective = promp_objective(model, rollouts, settings, recorded, create_graph=True)
    separate = clipped_surrogate(model, rollouts, 0.1, True) + 5e-4 * penalty
    torch.testing.assert_close(objective, separate)
    # and so is its meta-gradient (the objective reuses the inner steps' outputs for the penalty)
    params = list(model.parameters())
    for a, b in zip(torch.autograd.grad(objective, params, retain_graph=True),
                    torch.autograd.grad(separate, params, retain_graph=True)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)
    # the recorded outputs (at sampling) are the inner steps' own: zero penalty before any move
    at_sampling = []
    adaptation_path(model, rollouts, False, at_sampling)
    assert len(at_sampling) == 2
    for a, b in zip(at_sampling, step_predictions(model, rollouts, adaptation_path(model, rollouts, False))):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(penalty, list(model.parameters()), allow_unused=True)
    assert any(gr is not None and float(gr.abs().sum()) > 0 for gr in grads)
