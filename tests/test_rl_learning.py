"""Meta-RL learning machinery checked against independent computations.

Returns and GAE against hand computation, the baseline against numpy's least
squares, the policy's densities against torch.distributions, conjugate gradient
against a direct solve, the batched adaptation against a per-task loop written
out by hand (its own MLP forward and modulation, no Learner, no vmap), and a
TRPO step against its trust region.
"""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence as torch_kl

from mmaml.rl.config import RLConfig
from mmaml.core.learner import Learner
from mmaml.rl.baseline import features, fit_linear_baseline
from mmaml.rl.encoder import TrajectoryEncoder
from mmaml.rl.envs.registry import make_batched, make_goals
from mmaml.rl.maml_trpo import TRPOSettings, fisher_tasks, surrogate, trpo_step
from mmaml.rl.metalearner import PolicyMetaLearner, rollout_adaptation
from mmaml.rl.policy import GaussianMLPPolicy, kl_divergence, log_prob
from mmaml.rl.returns import discounted_returns, gae, normalize_per_task
from mmaml.rl.trpo import conjugate_gradient


def test_discounted_returns_by_hand():
    r = torch.tensor([[1.0, 2.0, 3.0]])
    # G2 = 3; G1 = 2 + 0.5*3 = 3.5; G0 = 1 + 0.5*3.5 = 2.75
    torch.testing.assert_close(discounted_returns(r, 0.5), torch.tensor([[2.75, 3.5, 3.0]]))


def test_gae_by_hand():
    r = torch.tensor([1.0, 0.0, 2.0])
    v = torch.tensor([0.5, 1.0, 1.5])
    g, lam = 0.9, 0.5
    d = [1 + g * 1.0 - 0.5, 0 + g * 1.5 - 1.0, 2 + 0.0 - 1.5]  # V_3 = 0 past the horizon
    expected = [d[0] + g * lam * d[1] + (g * lam) ** 2 * d[2], d[1] + g * lam * d[2], d[2]]
    torch.testing.assert_close(gae(r, v, g, lam), torch.tensor(expected))
    # lambda = 1 with a zero baseline is the discounted return
    torch.testing.assert_close(gae(r, torch.zeros(3), g, 1.0), discounted_returns(r, g))


def test_normalize_per_task():
    a = torch.randn(3, 4, 5) * torch.tensor([1.0, 10.0, 100.0]).view(3, 1, 1) + 7
    n = normalize_per_task(a)
    torch.testing.assert_close(n.reshape(3, -1).mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(n.reshape(3, -1).std(1), torch.ones(3), atol=1e-4, rtol=0)


def test_linear_baseline_is_each_tasks_least_squares_fit():
    torch.manual_seed(3)
    obs = torch.randn(3, 4, 10, 2)
    returns = torch.randn(3, 4, 10) + obs[..., 0] * 2
    fitted = fit_linear_baseline(obs, returns, reg=0.0)
    for t in range(3):
        x = features(obs[t]).reshape(-1, 8).double().numpy()
        w, *_ = np.linalg.lstsq(x, returns[t].reshape(-1).double().numpy(), rcond=None)
        np.testing.assert_allclose(fitted[t].reshape(-1).numpy(), x @ w, atol=1e-4)
    # a target that is linear in the features is fitted exactly
    exact = features(obs) @ torch.arange(8.0)
    torch.testing.assert_close(fit_linear_baseline(obs, exact, reg=0.0), exact, atol=1e-3, rtol=1e-3)


def test_log_prob_and_kl_match_torch_distributions():
    torch.manual_seed(0)
    pred_a, pred_b, actions = torch.randn(5, 6), torch.randn(5, 6), torch.randn(5, 3)
    dist = lambda p: Independent(Normal(p[:, :3], p[:, 3:].exp()), 1)  # noqa: E731
    torch.testing.assert_close(log_prob(pred_a, actions), dist(pred_a).log_prob(actions))
    torch.testing.assert_close(kl_divergence(pred_a, pred_b), torch_kl(dist(pred_a), dist(pred_b)))


def test_conjugate_gradient_solves_spd_system():
    torch.manual_seed(0)
    m = torch.randn(6, 6, dtype=torch.float64)
    a = m @ m.T + 6 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    torch.testing.assert_close(conjugate_gradient(lambda v: a @ v, b, iterations=20), torch.linalg.solve(a, b))


def test_fisher_subset_keeps_every_mode():
    idx = fisher_tasks(40, 0.25)
    assert len(idx) == 10
    assert set((idx // 20).tolist()) == {0, 1}  # both halves (modes) of a 2-mode meta-batch
    assert fisher_tasks(3, 0.01).tolist() == [0]


def small_model(modulated: bool, seed: int = 0, env: str = "navigation-bimodal"):
    torch.manual_seed(seed)
    batched = make_batched(env)
    policy = GaussianMLPPolicy(batched.observation_dim, batched.action_dim, (8, 8))
    if not modulated:
        return PolicyMetaLearner(Learner(policy, low_rank_linear=False), inner_lr=0.1), batched
    encoder = TrajectoryEncoder(batched.observation_dim, batched.action_dim, 8, 8)
    learner = Learner(policy, modulate=policy.modulation_sites, low_rank_linear=False)
    return PolicyMetaLearner(learner, encoder, "scale", inner_lr=0.1), batched


def small_rollouts(model, env, tasks=4, episodes=3, steps=1, seed=0, name="navigation-bimodal"):
    g = torch.Generator().manual_seed(seed)
    goals, mode = make_goals(name).sample(tasks, g)
    return rollout_adaptation(model, env, goals, mode, episodes, steps, g, encoder_episodes=2)


def hand_policy(params, obs, taus):
    """The policy written out for one task: tanh((x W^T + b) * (1 + tau)) per hidden layer, then the mean."""
    h = obs
    for i in range(2):
        h = h @ params[f"model.hidden.{i}.weight"].T + params[f"model.hidden.{i}.bias"]
        if taus is not None:
            h = h * (1 + taus[f"hidden.{i}"])
        h = torch.tanh(h)
    mean = h @ params["model.mean.weight"].T + params["model.mean.bias"]
    return torch.cat([mean, params["model.log_std"].expand_as(mean)], -1)


def per_task_surrogate(model, rollouts):
    """The MAML-TRPO surrogate, task by task, with a hand-written policy and inner step."""
    names = [n for n, _ in model.learner.named_parameters()]
    theta = dict(model.learner.named_parameters())
    taus_all, _ = model.modulation(rollouts.encoder_episodes)
    losses = []
    for t in range(rollouts.num_tasks):
        taus = None if taus_all is None else {k: v[t] for k, v in taus_all.items()}
        params = dict(theta)
        for ep in rollouts.steps[:-1]:
            obs, act = ep.observations[t].reshape(-1, 2), ep.actions[t].reshape(-1, 2)
            adv = ep.advantages[t].reshape(-1)
            inner = -(log_prob(hand_policy(params, obs, taus), act) * adv).mean()
            grads = torch.autograd.grad(inner, [params[n] for n in names], create_graph=True)
            params = {n: params[n] - model.inner_lr * g for n, g in zip(names, grads)}
        ep = rollouts.steps[-1]
        obs, act = ep.observations[t].reshape(-1, 2), ep.actions[t].reshape(-1, 2)
        ratio = torch.exp(log_prob(hand_policy(params, obs, taus), act) - ep.log_probs[t].reshape(-1))
        losses.append(-(ratio * ep.advantages[t].reshape(-1)).mean())
    return torch.stack(losses).mean()


@pytest.mark.parametrize("modulated", [False, True])
@pytest.mark.parametrize("steps", [1, 2])
def test_batched_adaptation_equals_hand_written_per_task_loop(modulated, steps):
    model, env = small_model(modulated)
    rollouts = small_rollouts(model, env, steps=steps)
    params = list(model.parameters())
    batched, _, _ = surrogate(model, rollouts, None, create_graph=True)
    reference = per_task_surrogate(model, rollouts)
    torch.testing.assert_close(batched, reference, atol=1e-6, rtol=1e-5)
    g_batched = torch.autograd.grad(batched, params, allow_unused=True)
    g_reference = torch.autograd.grad(reference, params, allow_unused=True)
    for p, a, b in zip(params, g_batched, g_reference):
        assert a is not None and b is not None
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    if modulated:  # the encoder is trained by the outer loss
        assert any(float(g.abs().sum()) > 0 for g in torch.autograd.grad(
            surrogate(model, rollouts, None, True)[0], list(model.encoder.parameters())))


def test_meta_gradient_is_second_order():
    """The meta-gradient differs from the first-order one: the inner step's Hessian term is kept."""
    model, env = small_model(False)
    rollouts = small_rollouts(model, env)
    loss2, _, _ = surrogate(model, rollouts, None, create_graph=True)
    loss1, _, _ = surrogate(model, rollouts, None, create_graph=False)
    torch.testing.assert_close(loss1, loss2)
    p = list(model.parameters())
    g2 = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss2, p)])
    g1 = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss1, p)])
    assert float((g2 - g1).norm()) > 1e-4 * float(g2.norm())


def test_encoder_reads_only_the_unmodulated_episodes():
    model, env = small_model(True)
    with torch.no_grad():  # a strong modulation, so modulated and unmodulated policies differ clearly
        for head in model.modulation_network.heads:
            head.bias.fill_(3.0)
    rollouts = small_rollouts(model, env, steps=1)
    theta = {k: v.detach() for k, v in model.learner.meta_parameters().items()}
    enc = rollouts.encoder_episodes
    obs = enc.observations.reshape(4, -1, 2)
    unmodulated = log_prob(model.learner(theta, obs, None, "scale"), enc.actions.reshape(4, -1, 2))
    modulated = log_prob(model.learner(theta, obs, rollouts.taus, "scale"), enc.actions.reshape(4, -1, 2))
    torch.testing.assert_close(enc.log_probs.reshape(4, -1), unmodulated)
    assert not torch.allclose(enc.log_probs.reshape(4, -1), modulated)
    # tau is a function of the encoder episodes alone: it is the same whatever the later episodes are
    taus, _ = model.modulation(enc)
    for k in taus:
        torch.testing.assert_close(taus[k], rollouts.taus[k])
    other = small_rollouts(model, env, steps=1, seed=0)
    other.steps[0].rewards.add_(100.0)
    for k, v in model.modulation(other.encoder_episodes)[0].items():
        torch.testing.assert_close(v, taus[k])
    # and the first scored episodes come from the modulated policy
    first = rollouts.steps[0]
    obs = first.observations.reshape(4, -1, 2)
    torch.testing.assert_close(first.log_probs.reshape(4, -1),
                               log_prob(model.learner(theta, obs, rollouts.taus, "scale"), first.actions.reshape(4, -1, 2)))


@pytest.mark.parametrize("modulated", [False, True])
def test_trpo_step_respects_trust_region_and_improves_surrogate(modulated):
    model, env = small_model(modulated, seed=1)
    rollouts = small_rollouts(model, env, tasks=4, episodes=4)
    settings = TRPOSettings.of(RLConfig(max_kl=0.01, cg_iterations=10, fisher_subsample=1.0))
    with torch.enable_grad():
        before, _, pred_before = surrogate(model, rollouts, None, create_graph=False)
    snapshot = [p.detach().clone() for p in model.parameters()]
    stats = trpo_step(model, rollouts, settings)
    assert stats.accepted
    with torch.enable_grad():
        after, kl, _ = surrogate(model, rollouts, pred_before.detach(), create_graph=False)
    assert float(after.detach()) < float(before.detach())
    assert 0 < float(kl.detach()) <= settings.max_kl * 1.0001
    assert math.isclose(float(after.detach()), stats.loss_after, rel_tol=1e-5, abs_tol=1e-7)
    assert any(not torch.equal(a, b) for a, b in zip(snapshot, model.parameters()))


def test_trpo_step_that_finds_no_improvement_leaves_parameters_alone():
    model, env = small_model(False, seed=2)
    rollouts = small_rollouts(model, env)
    snapshot = [p.detach().clone() for p in model.parameters()]
    stats = trpo_step(model, rollouts, TRPOSettings.of(RLConfig(max_kl=1e-30, line_search_steps=2, fisher_subsample=1.0)))
    assert not stats.accepted
    for a, b in zip(snapshot, model.parameters()):
        assert torch.equal(a, b)


def test_short_training_raises_adapted_return_on_unimodal_navigation():
    from mmaml.rl.algorithm import RLAlgorithm
    from mmaml.rl.config import RLConfig
    from mmaml.rl.evaluation import per_task_returns

    config = RLConfig(method="maml", env="navigation", meta_batch_size=10, episodes_per_task=10, hidden_sizes=[32, 32],
                      max_kl=0.05).validate()
    torch.manual_seed(0)
    algorithm = RLAlgorithm(config, torch.device("cpu"), torch.Generator().manual_seed(0))
    goals = make_goals("navigation")
    before, _ = per_task_returns(algorithm.model, config, algorithm.env, goals, 40, seed=5, steps=1)
    for _ in range(6):
        algorithm.step()
    after, _ = per_task_returns(algorithm.model, config, algorithm.env, goals, 40, seed=5, steps=1)
    diff = after[1] - before[1]  # the same 40 goals, after one gradient step
    assert float(diff.mean()) > 3 * float(diff.std() / math.sqrt(40))


@pytest.mark.parametrize("modulated", [False, True])
def test_fisher_vector_product_is_the_hessian_of_the_kl(modulated):
    """Against differentiating the KL's gradient once more (the textbook Hessian-vector product)."""
    from mmaml.rl.maml_trpo import fisher_vector_product
    from mmaml.rl.trpo import flatten

    model, env = small_model(modulated, seed=4)
    rollouts = small_rollouts(model, env, steps=1)
    params = list(model.parameters())
    _, kl, pred = surrogate(model, rollouts, None, create_graph=True)
    kl_grad = flatten(torch.autograd.grad(kl, params, create_graph=True, allow_unused=True), params)
    product = fisher_vector_product(pred, params, damping=0.0)
    for seed in range(3):
        v = torch.randn(kl_grad.shape, generator=torch.Generator().manual_seed(seed))
        hv = flatten(torch.autograd.grad(kl_grad @ v, params, retain_graph=True, allow_unused=True), params)
        torch.testing.assert_close(product(v), hv, atol=1e-6, rtol=1e-4)
    assert float(product(v) @ v) > 0


def test_first_order_fisher_is_the_kl_hessian_at_the_adapted_policy():
    """``fisher_second_order: false``: the Fisher of the adapted policy in its own parameters, i.e. the inner
    step's Jacobian taken as the identity. Against the textbook Hessian-vector product of the KL with the
    adapted parameters as free leaves."""
    from mmaml.rl.maml_trpo import fisher_vector_product
    from mmaml.rl.metalearner import adapted_parameters
    from mmaml.rl.policy import kl_divergence

    model, env = small_model(False, seed=5)
    rollouts = small_rollouts(model, env, steps=1)
    params = list(model.parameters())
    _, _, pred = surrogate(model, rollouts, None, create_graph=False)
    product = fisher_vector_product(pred, params, damping=0.0)
    adapted, _ = adapted_parameters(model, rollouts, create_graph=False)
    names = list(model.learner.meta_parameters())
    leaves = {k: adapted[k].detach().requires_grad_() for k in names}
    obs, _ = rollouts.steps[-1].flat()
    new = model.learner(leaves, obs, None, model.modulation_kind)
    kl = kl_divergence(new.detach(), new).mean()
    grads = torch.autograd.grad(kl, [leaves[k] for k in names], create_graph=True)
    # the meta-parameters are shared across tasks: a direction v moves every task's adapted parameters by v
    for seed in range(2):
        v = torch.randn(sum(p.numel() for p in params), generator=torch.Generator().manual_seed(seed))
        pieces, start = {}, 0
        for k, p in zip(names, params):
            pieces[k] = v[start:start + p.numel()].view_as(p)
            start += p.numel()
        dot = sum((g * pieces[k]).sum() for k, g in zip(names, grads))  # broadcast over the task dimension
        hv = torch.autograd.grad(dot, [leaves[k] for k in names], retain_graph=True)
        expected = torch.cat([h.sum(0).reshape(-1) for h in hv])  # back to the shared parameters
        torch.testing.assert_close(product(v), expected, atol=1e-6, rtol=1e-4)


def test_per_iteration_evaluation_does_not_depend_on_the_chunking():
    """A task_rng=per_iteration run's test tasks draw their episodes from generators of their own, so
    scoring them 4 or 12 at a time gives the same returns and embeddings (what lets torchrun's ranks
    share them); a stream run's do depend on it (one generator drawn chunk after chunk)."""
    import dataclasses

    from mmaml.rl.algorithm import RLAlgorithm
    from mmaml.rl.config import RLConfig
    from mmaml.rl.evaluation import per_task_returns, embed_test_tasks

    config = RLConfig(method="mumomaml", env="navigation-bimodal", meta_batch_size=4, episodes_per_task=3,
                      hidden_sizes=[16], task_rng="per_iteration").validate()
    torch.manual_seed(0)
    algorithm = RLAlgorithm(config, torch.device("cpu"), torch.Generator().manual_seed(0))
    goals = make_goals("navigation-bimodal")
    wide = dataclasses.replace(config, meta_batch_size=12)
    a, mode_a = per_task_returns(algorithm.model, config, algorithm.env, goals, 12, seed=3, steps=1)
    b, mode_b = per_task_returns(algorithm.model, wide, algorithm.env, goals, 12, seed=3, steps=1)
    assert torch.equal(mode_a, mode_b) and a.shape == (2, 12)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    ea, _ = embed_test_tasks(algorithm.model, config, algorithm.env, goals, 12, seed=3)
    eb, _ = embed_test_tasks(algorithm.model, wide, algorithm.env, goals, 12, seed=3)
    assert ea.shape[0] == 12
    torch.testing.assert_close(ea, eb, rtol=1e-5, atol=1e-5)
    stream, stream_wide = (dataclasses.replace(c, task_rng="stream") for c in (config, wide))
    c, _ = per_task_returns(algorithm.model, stream, algorithm.env, goals, 12, seed=3, steps=1)
    d, _ = per_task_returns(algorithm.model, stream_wide, algorithm.env, goals, 12, seed=3, steps=1)
    assert not torch.allclose(c[:, 4:], d[:, 4:])  # the first chunk's draws are the same, the later ones not


def test_clipped_surrogate_by_hand_and_its_gradient_vanishes_where_clipped():
    """Against the formula computed from the adapted policy's log-probabilities; at the sampling policy
    (ratio 1) its gradient is the plain surrogate's; with the ratio pushed beyond 1 + clip where the
    advantage is positive (and below 1 - clip where negative) no step contributes a gradient."""
    from mmaml.rl.maml_ppo import clipped_surrogate
    from mmaml.rl.maml_trpo import surrogate
    from mmaml.rl.metalearner import adapted_parameters

    model, env = small_model(True)
    rollouts = small_rollouts(model, env)
    params = [p for p in model.parameters() if p.requires_grad]
    loss = clipped_surrogate(model, rollouts, 0.1, create_graph=True)
    plain, _, _ = surrogate(model, rollouts, None, create_graph=True)
    torch.testing.assert_close(loss, plain, rtol=1e-5, atol=1e-6)
    g1 = torch.autograd.grad(loss, params, allow_unused=True)
    g2 = torch.autograd.grad(plain, params, allow_unused=True)
    for a, b in zip(g1, g2):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)

    scored = rollouts.steps[-1]
    with torch.enable_grad():
        adapted, taus = adapted_parameters(model, rollouts, create_graph=False)
        obs, actions = scored.flat()
        logp = log_prob(model.learner(adapted, obs, taus, model.modulation_kind), actions).detach()
    adv = scored.advantages.reshape(4, -1)
    shift = torch.where(adv > 0, torch.full_like(adv, 0.5), torch.full_like(adv, -0.5))  # ratio e^0.5 / e^-0.5
    scored.log_probs = (logp - shift).reshape(scored.log_probs.shape)
    ratio = torch.exp(shift)
    expected = -torch.minimum(ratio * adv, ratio.clamp(0.9, 1.1) * adv).mean()
    loss = clipped_surrogate(model, rollouts, 0.1, create_graph=True)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-4, atol=1e-5)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    assert all(g is None or float(g.abs().max()) == 0.0 for g in grads)


@pytest.mark.parametrize("modulated", [False, True])
def test_ppo_step_lowers_the_surrogate_and_moves_the_encoder(modulated):
    from mmaml.rl.maml_ppo import PPOSettings, ppo_step

    model, env = small_model(modulated)
    rollouts = small_rollouts(model, env)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    stats = ppo_step(model, rollouts, PPOSettings.of(RLConfig(outer_optimizer="ppo", ppo_epochs=3)), optimizer)
    assert stats.finite and stats.accepted and stats.backtracks == 0
    assert stats.loss_after < stats.loss_before and stats.kl > 0
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("learner") for n in moved)
    if modulated:  # Adam moves the encoder's and modulation network's parameters too
        assert any(n.startswith("encoder") for n in moved) and any(n.startswith("modulation") for n in moved)


@pytest.mark.parametrize("part", ["encoder", "modulation_network", "learner", "all"])
def test_outer_gradient_matches_central_differences(part):
    """The outer surrogate's gradient through tau and the inner step (float64), along a random direction in
    the encoder's, the modulation network's, the policy's or all parameters, against central differences
    of the surrogate itself: an independent check that the encoder gets the gradient it should."""
    from mmaml.rl.maml_trpo import surrogate

    model, env = small_model(True)
    rollouts = small_rollouts(model, env, steps=1)
    model.double()
    rollouts = rollouts.to(torch.float64)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(1)
    direction = [torch.randn(p.shape, generator=g, dtype=torch.float64) * (part in ("all", n.split(".")[0]))
                 for n, p in named]
    params = [p for _, p in named]

    def loss() -> torch.Tensor:
        with torch.enable_grad():
            return surrogate(model, rollouts, None, create_graph=True)[0]

    grads = torch.autograd.grad(loss(), params, allow_unused=True)
    analytic = sum(float((gr * d).sum()) for gr, d in zip(grads, direction) if gr is not None)
    eps = 1e-6
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.add_(eps * d)
    plus = float(loss().detach())
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.sub_(2 * eps * d)
    minus = float(loss().detach())
    numeric = (plus - minus) / (2 * eps)
    assert abs(analytic) > 1e-6  # the direction does move the loss
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-9)
