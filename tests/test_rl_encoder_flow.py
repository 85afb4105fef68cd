"""encoder_flow: authors. The unmodulated step-0 episodes feed the encoder and the first, unmodulated, inner
step; the policy is modulated from step 1 on. Checked against a per-task computation written out by hand."""

import pytest
import torch

from mmaml.core.learner import Learner
from mmaml.errors import ConfigError
from mmaml.rl.config import RLConfig
from mmaml.rl.encoder import TrajectoryEncoder
from mmaml.rl.envs.registry import make_batched, make_goals
from mmaml.rl.maml_trpo import surrogate
from mmaml.rl.metalearner import PolicyMetaLearner, rollout_adaptation
from mmaml.rl.policy import GaussianMLPPolicy, log_prob
from test_rl_learning import hand_policy  # the policy of one task, written out

NAMES = ["model.hidden.0.weight", "model.hidden.0.bias", "model.hidden.1.weight", "model.hidden.1.bias",
         "model.mean.weight", "model.mean.bias", "model.log_std"]


def authors_model(seed=0):
    torch.manual_seed(seed)
    env = make_batched("navigation-bimodal")
    policy = GaussianMLPPolicy(2, 2, (8, 8))
    learner = Learner(policy, modulate=policy.modulation_sites, low_rank_linear=False)
    model = PolicyMetaLearner(learner, TrajectoryEncoder(2, 2, 8, 8), "scale", inner_lr=0.1, encoder_flow="authors")
    with torch.no_grad():  # a strong modulation, so that modulated and unmodulated policies differ clearly
        for head in model.modulation_network.heads:
            head.bias.fill_(2.0)
    return model, env


def hand_step(params, episodes, t, taus, lr, create_graph):
    obs, act = episodes.observations[t].reshape(-1, 2), episodes.actions[t].reshape(-1, 2)
    loss = -(log_prob(hand_policy(params, obs, taus), act) * episodes.advantages[t].reshape(-1)).mean()
    grads = torch.autograd.grad(loss, [params[n] for n in NAMES], create_graph=create_graph)
    return {n: params[n] - lr * g for n, g in zip(NAMES, grads)}


def sample(model, env, steps=1, tasks=4, episodes=3):
    g = torch.Generator().manual_seed(1)
    goals, mode = make_goals("navigation-bimodal").sample(tasks, g)
    return rollout_adaptation(model, env, goals, mode, episodes, steps, g, encoder_episodes=2)


def test_step_zero_is_unmodulated_and_feeds_the_encoder_and_the_first_step():
    model, env = authors_model()
    rollouts = sample(model, env, steps=2)
    first = rollouts.steps[0]
    assert rollouts.encoder_episodes.observations.shape == first.observations.shape  # all 3 step-0 episodes, no extra ones
    assert torch.equal(rollouts.encoder_episodes.actions, first.actions)
    assert rollouts.modulated_from == 1
    theta = {n: p.detach() for n, p in model.learner.named_parameters()}
    taus_all, _ = model.modulation(first)
    for k in taus_all:
        torch.testing.assert_close(taus_all[k], rollouts.taus[k])
    for t in range(4):
        taus = {k: v[t] for k, v in taus_all.items()}
        obs, act = first.observations[t].reshape(-1, 2), first.actions[t].reshape(-1, 2)
        # step 0 sampled by the plain policy, not the modulated one
        torch.testing.assert_close(first.log_probs[t].reshape(-1), log_prob(hand_policy(theta, obs, None), act))
        assert not torch.allclose(first.log_probs[t].reshape(-1), log_prob(hand_policy(theta, obs, taus), act))
        # step 1: modulated, after an inner step on the step-0 episodes with the unmodulated loss
        leaves = {n: v.clone().requires_grad_() for n, v in theta.items()}
        after_one = {n: v.detach() for n, v in hand_step(leaves, first, t, None, 0.1, False).items()}
        second = rollouts.steps[1]
        obs, act = second.observations[t].reshape(-1, 2), second.actions[t].reshape(-1, 2)
        torch.testing.assert_close(second.log_probs[t].reshape(-1),
                                   log_prob(hand_policy(after_one, obs, taus), act), atol=1e-5, rtol=1e-5)
        # step 2: the second inner step takes the modulated loss
        leaves = {n: v.clone().requires_grad_() for n, v in after_one.items()}
        after_two = {n: v.detach() for n, v in hand_step(leaves, second, t, taus, 0.1, False).items()}
        third = rollouts.steps[2]
        obs, act = third.observations[t].reshape(-1, 2), third.actions[t].reshape(-1, 2)
        torch.testing.assert_close(third.log_probs[t].reshape(-1),
                                   log_prob(hand_policy(after_two, obs, taus), act), atol=1e-5, rtol=1e-5)


def test_meta_gradient_follows_the_authors_flow_and_trains_the_encoder():
    model, env = authors_model(seed=2)
    rollouts = sample(model, env, steps=1)
    params = list(model.parameters())
    batched, _, _ = surrogate(model, rollouts, None, create_graph=True)
    theta = dict(model.learner.named_parameters())
    taus_all, _ = model.modulation(rollouts.encoder_episodes)
    losses = []
    for t in range(4):
        adapted = hand_step(dict(theta), rollouts.steps[0], t, None, 0.1, True)  # unmodulated first step
        scored = rollouts.steps[1]
        obs, act = scored.observations[t].reshape(-1, 2), scored.actions[t].reshape(-1, 2)
        taus = {k: v[t] for k, v in taus_all.items()}
        ratio = torch.exp(log_prob(hand_policy(adapted, obs, taus), act) - scored.log_probs[t].reshape(-1))
        losses.append(-(ratio * scored.advantages[t].reshape(-1)).mean())
    reference = torch.stack(losses).mean()
    torch.testing.assert_close(batched, reference, atol=1e-6, rtol=1e-5)
    for a, b in zip(torch.autograd.grad(batched, params, retain_graph=True, allow_unused=True),
                    torch.autograd.grad(reference, params, allow_unused=True)):
        assert a is not None and b is not None
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    encoder_grads = torch.autograd.grad(batched, list(model.encoder.parameters()))
    assert any(float(g.abs().sum()) > 0 for g in encoder_grads)


def test_the_flow_is_a_checked_config_key():
    assert RLConfig(encoder_flow="authors").validate().encoder_flow == "authors"
    with pytest.raises(ConfigError, match="encoder_flow"):
        RLConfig(encoder_flow="paper").validate()
    with pytest.raises(ConfigError, match="inner_steps and eval_inner_steps of at least 1"):
        RLConfig(encoder_flow="authors", eval_inner_steps=0).validate()
    RLConfig(method="maml", encoder_flow="authors", eval_inner_steps=0).validate()  # MAML has no encoder


def test_a_run_with_the_authors_flow_trains_and_evaluates(tmp_path):
    from mmaml.rl.evaluation import encoder_inputs
    from mmaml.runs import make_trainer

    config = RLConfig(env="navigation-bimodal", encoder_flow="authors", meta_batch_size=4, episodes_per_task=3,
                      hidden_sizes=[8], encoder_hidden=8, embedding_dim=8, iterations=2, validate_every=1,
                      validation_tasks=4, eval_inner_steps=1).validate()
    trainer = make_trainer(config, tmp_path / "run", progress=False, tensorboard=False)
    trainer.train()
    goals, _ = make_goals(config.env).sample(4, torch.Generator().manual_seed(0))
    episodes = encoder_inputs(trainer.model, config, trainer.algorithm.env, goals, torch.Generator().manual_seed(0))
    assert episodes.observations.shape[1] == 3  # the embeddings read the step-0 episodes: episodes_per_task
