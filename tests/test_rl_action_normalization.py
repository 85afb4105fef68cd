"""normalize_actions: the policy acts in the references' normalised range, mapped onto each env's action bounds.

Checked against hand computation (navigation), against the same env fed the mapped
actions by hand (half-cheetah, to the last bit), and for what a run records.
"""

import pytest
import torch

from mmaml.rl.config import RLConfig
from mmaml.rl.envs.registry import make_batched, make_goals
from mmaml.kinds import saved_config_from_dict


def test_navigation_maps_minus_one_one_onto_the_velocity_clip_by_hand():
    env = make_batched("navigation", normalize_actions=True)
    env.reset(torch.tensor([[0.3, -0.2]]), 1)
    obs, reward = env.step(torch.tensor([[[0.5, -3.0]]]))  # 0.5 -> 0.05; -3 is clipped to -1 -> -0.1
    torch.testing.assert_close(obs, torch.tensor([[[0.05, -0.1]]]))
    expected = -((0.3 - 0.05) ** 2 + (-0.2 + 0.1) ** 2) ** 0.5
    torch.testing.assert_close(reward, torch.tensor([[expected]]))
    raw = make_batched("navigation")  # without the setting, 0.5 is clipped to the velocity bound 0.1
    raw.reset(torch.tensor([[0.3, -0.2]]), 1)
    torch.testing.assert_close(raw.step(torch.tensor([[[0.5, -3.0]]]))[0], torch.tensor([[[0.1, -0.1]]]))


def test_half_cheetah_maps_minus_ten_ten_onto_the_actuators_exactly():
    """The normalised env fed a equals the raw env fed clip(a, -10, 10) / 10, trajectory and rewards, bit for bit."""
    g = torch.Generator().manual_seed(0)
    goals, _ = make_goals("cheetah-speed").sample(2, g)
    normalized, raw = make_batched("cheetah-speed", normalize_actions=True), make_batched("cheetah-speed")
    start = torch.Generator().manual_seed(1)
    normalized.reset(goals, 3, start)
    raw.reset(goals, 3, initial_state=normalized.initial_state_copy())
    for _ in range(5):
        actions = 8 * torch.randn(2, 3, 6, generator=g)  # many beyond +-10
        a, ra = normalized.step(actions)
        b, rb = raw.step(actions.clamp(-10.0, 10.0) * 0.1)
        assert torch.equal(a, b) and torch.equal(ra, rb)
    assert (actions.abs() > 10).any()


def test_the_point_mass_is_normalised_already():
    torch.manual_seed(0)
    actions = 20 * torch.randn(1, 2, 2)
    outs = []
    for flag in (False, True):
        env = make_batched("pointmass-4modes", normalize_actions=flag)
        env.reset(torch.tensor([[0.5, 0.5]]), 2, initial_state=torch.zeros(1, 2, 4))
        outs.append(env.step(actions))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_a_run_records_the_setting_and_a_run_saved_without_it_keeps_raw_actions():
    from mmaml.rl.builder import build_env

    config = RLConfig(env="navigation", normalize_actions=True).validate()
    assert config.to_dict()["normalize_actions"] is True
    assert build_env(config).normalize_actions
    saved = config.to_dict()
    del saved["normalize_actions"]
    old = saved_config_from_dict(saved)
    assert old.normalize_actions is False and not build_env(old).normalize_actions


@pytest.mark.parametrize("value", ["yes", 1])
def test_normalize_actions_must_be_true_or_false(value):
    from mmaml.errors import ConfigError
    from mmaml.engine.config import apply_overrides

    with pytest.raises(ConfigError, match="normalize_actions must be true or false"):
        apply_overrides(RLConfig(), {"normalize_actions": value})
