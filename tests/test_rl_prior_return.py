"""prior_return_weight: the pre-update (modulated) policy's clipped surrogate on its step-0 episodes, added to
the ppo/promp outer objective. Checked against the same term written out task by task with a hand policy."""

import pytest
import torch

from mmaml.core.learner import Learner
from mmaml.cli.main import main
from mmaml.errors import ConfigError
from mmaml.presets import preset_summary, resolve
from mmaml.rl.config import RLConfig
from mmaml.rl.encoder import TrajectoryEncoder
from mmaml.rl.envs.registry import make_batched, make_goals
from mmaml.rl.maml_ppo import PPOSettings, promp_objective
from mmaml.rl.metalearner import PolicyMetaLearner, rollout_adaptation
from mmaml.rl.policy import GaussianMLPPolicy, log_prob
from test_rl_learning import hand_policy  # the policy of one task, written out


def model_and_rollouts(modulated: bool, flow: str = "seed"):
    torch.manual_seed(0)
    env = make_batched("navigation-bimodal")
    policy = GaussianMLPPolicy(2, 2, (8, 8))
    learner = Learner(policy, modulate=policy.modulation_sites if modulated else (), low_rank_linear=False)
    encoder = TrajectoryEncoder(2, 2, 8, 8) if modulated else None
    model = PolicyMetaLearner(learner, encoder, "scale", inner_lr=0.1, inner_objective="lvc", encoder_flow=flow)
    if modulated:
        with torch.no_grad():  # a clear modulation, so that the modulated prior differs from the plain policy
            for head in model.modulation_network.heads:
                head.bias.fill_(1.0)
    g = torch.Generator().manual_seed(1)
    goals, mode = make_goals("navigation-bimodal").sample(4, g)
    return model, rollout_adaptation(model, env, goals, mode, 3, 1, g, encoder_episodes=2)


def hand_prior_term(model, rollouts, clip):
    """The clipped surrogate of the policy that sampled step 0, task by task (the modulation from the encoder)."""
    theta = dict(model.learner.named_parameters())
    taus, _ = model.modulation(rollouts.encoder_episodes)
    first = rollouts.steps[0]
    terms, outside = [], 0
    for t in range(rollouts.num_tasks):
        tau = None if taus is None or model.step_taus(0, taus) is None else {k: v[t] for k, v in taus.items()}
        obs, act = first.observations[t].reshape(-1, 2), first.actions[t].reshape(-1, 2)
        ratio = torch.exp(log_prob(hand_policy(theta, obs, tau), act) - first.log_probs[t].reshape(-1))
        adv = first.advantages[t].reshape(-1)
        terms.append(torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv))
        outside += int(((ratio - 1).abs() > clip).sum())
    return -torch.cat(terms).mean(), outside


@pytest.mark.parametrize("modulated,flow", [(True, "seed"), (True, "authors"), (False, "seed")])
def test_the_prior_term_is_the_clipped_surrogate_of_the_policy_that_sampled_step_zero(modulated, flow):
    model, rollouts = model_and_rollouts(modulated, flow)
    with torch.no_grad():  # the meta-parameters move, as after Adam epochs, so that ratios leave the clip range
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    config = RLConfig(outer_optimizer="promp", ppo_clip=0.1, promp_inner_kl=0.0)
    plain = promp_objective(model, rollouts, PPOSettings.of(config), [], create_graph=True)
    config.prior_return_weight = 0.5
    weighted = promp_objective(model, rollouts, PPOSettings.of(config), [], create_graph=True)
    prior, outside = hand_prior_term(model, rollouts, 0.1)
    torch.testing.assert_close(weighted, plain + 0.5 * prior, rtol=1e-5, atol=1e-7)
    assert outside > 0 and abs(float(prior.detach())) > 1e-3  # the clip is exercised; the term is not zero
    params = [p for p in model.parameters() if p.requires_grad]
    grad_w = torch.autograd.grad(weighted, params, retain_graph=True, allow_unused=True)
    grad_0 = torch.autograd.grad(plain, params, retain_graph=True, allow_unused=True)
    grad_p = torch.autograd.grad(prior, params, retain_graph=True, allow_unused=True)
    zero = lambda g, p: torch.zeros_like(p) if g is None else g  # noqa: E731
    for gw, g0, gp, p in zip(grad_w, grad_0, grad_p, params):
        torch.testing.assert_close(zero(gw, p), zero(g0, p) + 0.5 * zero(gp, p), rtol=1e-4, atol=1e-7)
    if modulated and flow == "seed":  # the encoder and modulation network learn from the prior's return
        encoder_grads = grad_p[len(list(model.learner.parameters())):]
        assert any(g is not None and float(g.abs().sum()) > 0 for g in encoder_grads)


def test_prior_return_weight_is_checked():
    with pytest.raises(ConfigError, match="prior_return_weight.*outer_optimizer"):
        RLConfig(outer_optimizer="trpo", prior_return_weight=1.0).validate()
    with pytest.raises(ConfigError, match="prior_return_weight.*negative"):
        RLConfig(outer_optimizer="promp", prior_return_weight=-1.0).validate()
    with pytest.raises(ConfigError, match="prior_return_weight.*inner_steps"):
        RLConfig(outer_optimizer="promp", prior_return_weight=1.0, inner_steps=0).validate()
    assert PPOSettings.of(RLConfig(outer_optimizer="ppo", prior_return_weight=2.0).validate()).prior_weight == 2.0
    assert PPOSettings.of(RLConfig(outer_optimizer="promp").validate()).prior_weight == 0.0


@pytest.mark.parametrize("preset, weight", [
    *((f"rl-{env}-{method}", 1.0) for env in ("navigation", "cheetah-speed", "cheetah-location")
      for method in ("maml", "mumomaml")),
    ("rl-navigation-unimodal-maml", 0.0), ("rl-cheetah-location-ahead-maml", 0.0),
    ("rl-pointmass-4modes-mumomaml", 0.0)])
def test_the_figure3_presets_score_the_prior_and_the_anchors_do_not(preset, weight):
    assert resolve(preset).prior_return_weight == weight  # as measured in docs/results/rl.md
    assert ("prior's return x1," in preset_summary(preset)) == (weight == 1.0)  # and `mmaml presets` says so


def test_trpo_on_a_figure3_preset_asks_for_weight_0_in_one_line(capsys, tmp_path):
    args = ["train", "rl-navigation-mumomaml", "--out", str(tmp_path / "run"), "--set", "outer_optimizer=trpo"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "prior_return_weight" in err[0] and "outer_optimizer" in err[0]
    assert not (tmp_path / "run").exists()
