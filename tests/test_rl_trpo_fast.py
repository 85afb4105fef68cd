"""The default MAML-TRPO step against the reference step it replaced, and its conjugate-gradient curvature.

The default step shares one autograd graph between the meta-gradient and the
Fisher-vector products and reads the step's curvature off conjugate gradient's
own products; :func:`mmaml.rl.trpo_reference.reference_trpo_step` builds a second
graph and takes an extra product. Both must take the same step; they are
compared in float64, since in float32 ten conjugate-gradient iterations amplify
the rounding of a sum taken in another order to some 1e-4 of a step.
"""

import copy
import dataclasses

import pytest
import torch

from mmaml.rl.config import RLConfig
from mmaml.core.learner import Learner
from mmaml.rl.encoder import TrajectoryEncoder
from mmaml.rl.envs.registry import make_batched, make_goals
from mmaml.rl.maml_trpo import TRPOSettings, trpo_step
from mmaml.rl.metalearner import PolicyMetaLearner, rollout_adaptation
from mmaml.rl.policy import GaussianMLPPolicy
from mmaml.rl.trpo import conjugate_gradient, conjugate_gradient_with_product
from mmaml.rl.trpo_reference import reference_trpo_step


def test_conjugate_gradient_product_is_the_matrix_times_the_solution():
    torch.manual_seed(0)
    m = torch.randn(30, 30, dtype=torch.float64)
    a = m @ m.T + 0.1 * torch.eye(30, dtype=torch.float64)  # badly conditioned: CG stops short of the solution
    b = torch.randn(30, dtype=torch.float64)
    for iterations in (1, 3, 10):
        x, ax = conjugate_gradient_with_product(lambda v: a @ v, b, iterations)
        torch.testing.assert_close(ax, a @ x, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(x, conjugate_gradient(lambda v: a @ v, b, iterations))
    assert not torch.allclose(conjugate_gradient_with_product(lambda v: a @ v, b, 3)[0], torch.linalg.solve(a, b))


def model_and_rollouts(modulated: bool, first_order: bool = False, tasks: int = 6, seed: int = 0):
    torch.manual_seed(seed)
    env = make_batched("navigation-bimodal")
    policy = GaussianMLPPolicy(env.observation_dim, env.action_dim, (16, 16))
    if modulated:
        learner = Learner(policy, modulate=policy.modulation_sites, low_rank_linear=False)
        model = PolicyMetaLearner(learner, TrajectoryEncoder(env.observation_dim, env.action_dim, 8, 8), "scale",
                                  inner_lr=0.1, first_order=first_order)
    else:
        model = PolicyMetaLearner(Learner(policy, low_rank_linear=False), inner_lr=0.1, first_order=first_order)
    g = torch.Generator().manual_seed(seed)
    goals, mode = make_goals("navigation-bimodal").sample(tasks, g)
    rollouts = rollout_adaptation(model, env, goals, mode, 4, 1, g, encoder_episodes=2)
    return model.double(), double(rollouts)


def double(rollouts):
    """The rollouts with every floating-point tensor in float64."""
    def convert(episodes):
        if episodes is None:
            return None
        return dataclasses.replace(episodes, **{f.name: getattr(episodes, f.name).double()
                                                for f in dataclasses.fields(episodes)
                                                if torch.is_tensor(getattr(episodes, f.name))})
    rollouts.encoder_episodes = convert(rollouts.encoder_episodes)
    rollouts.steps = [convert(e) for e in rollouts.steps]
    return rollouts


@pytest.mark.parametrize("modulated,subsample,fisher_second_order,first_order", [
    (False, 1.0, True, False),
    (False, 0.34, True, False),  # 2 of 6 tasks: unequal parts
    (True, 0.5, True, False),
    (True, 0.34, False, False),
    (False, 0.5, True, True),
])
def test_default_step_equals_reference_step(modulated, subsample, fisher_second_order, first_order):
    model, rollouts = model_and_rollouts(modulated, first_order)
    reference = copy.deepcopy(model)
    settings = TRPOSettings.of(RLConfig(max_kl=0.01, cg_iterations=10, fisher_subsample=subsample,
                                        fisher_second_order=fisher_second_order))
    stats = trpo_step(model, rollouts, settings)
    expected = reference_trpo_step(reference, rollouts, settings)
    assert stats.accepted and expected.accepted
    assert stats.backtracks == expected.backtracks
    torch.testing.assert_close(stats.loss_before, expected.loss_before, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(stats.loss_after, expected.loss_after, rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(stats.kl, expected.kl, rtol=1e-6, atol=1e-12)
    start, _ = model_and_rollouts(modulated, first_order)
    moved = 0.0
    with torch.no_grad():
        for (name, p), q, s in zip(model.named_parameters(), reference.parameters(), start.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-8, msg=name)
            moved = max(moved, float((p - s).abs().max()))
    assert moved > 1e-4  # the step moved the parameters: the comparison is not of two no-ops
