"""Meta-RL environments: dynamics by hand, gymnasium checks, batched == gymnasium, goals, references."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from mmaml.rl.envs import (
    ENVIRONMENTS,
    BatchedNavigation2D,
    BatchedPointMass,
    GaussianMixtureGoals,
    Navigation2DEnv,
    PointMassEnv,
    UniformGoals,
    bimodal_navigation_goals,
    make_batched,
    make_goals,
    navigation_goals,
    point_mass_goals,
    reference_returns,
    register_envs,
)

# --- hand-computed episodes ----------------------------------------------------------------

# Navigation, goal (0.35, -0.5), start at the origin; actions clipped to [-0.1, 0.1].
NAV_GOAL = [0.35, -0.5]
NAV_ACTIONS = [[0.05, -0.3], [2.0, -7.0], [-0.03, 0.0]]
NAV_OBS = [[0.05, -0.1], [0.15, -0.2], [0.12, -0.2]]
NAV_REWARDS = [-0.5, -math.sqrt(0.2**2 + 0.3**2), -math.sqrt(0.23**2 + 0.3**2)]

# Point mass, goal (3.05, 3.85), start p = (0.1, -0.2), v = (0.05, 0); raw actions clipped
# to [-10, 10] then scaled by 0.01; v += a, then p += v.
PM_GOAL = [3.05, 3.85]
PM_START = [0.1, -0.2, 0.05, 0.0]
PM_ACTIONS = [[-20.0, 5.0], [4.0, -10.0], [0.0, 0.0]]
PM_OBS = [[0.05, -0.15, -0.05, 0.05], [0.04, -0.2, -0.01, -0.05], [0.03, -0.25, -0.01, -0.05]]
PM_REWARDS = [-5.0, -math.sqrt(3.01**2 + 4.05**2), -math.sqrt(3.02**2 + 4.1**2)]


def test_navigation_gym_by_hand():
    env = Navigation2DEnv()
    obs, info = env.reset(seed=0, options={"goal": NAV_GOAL})
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    assert obs.dtype == np.float32
    np.testing.assert_array_equal(info["goal"], NAV_GOAL)
    for action, expected_obs, expected_reward in zip(NAV_ACTIONS, NAV_OBS, NAV_REWARDS):
        obs, reward, terminated, truncated, info = env.step(np.array(action))
        np.testing.assert_allclose(obs, expected_obs, atol=1e-7)
        assert reward == pytest.approx(expected_reward, abs=1e-12)
        assert info["distance"] == pytest.approx(-expected_reward, abs=1e-12)
        assert not terminated and not truncated


def test_navigation_batched_by_hand():
    env = BatchedNavigation2D()
    goals = torch.tensor([NAV_GOAL, NAV_GOAL])
    obs = env.reset(goals, episodes=3)
    assert obs.shape == (2, 3, 2) and obs.dtype == torch.float32
    assert torch.equal(obs, torch.zeros(2, 3, 2))
    for action, expected_obs, expected_reward in zip(NAV_ACTIONS, NAV_OBS, NAV_REWARDS):
        obs, rewards = env.step(torch.tensor(action).expand(2, 3, 2))
        assert rewards.shape == (2, 3)
        torch.testing.assert_close(obs, torch.tensor(expected_obs).expand(2, 3, 2))
        torch.testing.assert_close(rewards, torch.full((2, 3), expected_reward))
        assert torch.equal(env.positions, obs)


def test_point_mass_gym_by_hand():
    env = PointMassEnv(modes=4)
    obs, _ = env.reset(options={"goal": PM_GOAL, "state": PM_START})
    np.testing.assert_allclose(obs, PM_START, atol=1e-7)
    for action, expected_obs, expected_reward in zip(PM_ACTIONS, PM_OBS, PM_REWARDS):
        obs, reward, terminated, truncated, info = env.step(np.array(action))
        np.testing.assert_allclose(obs, expected_obs, atol=1e-7)
        assert reward == pytest.approx(expected_reward, abs=1e-12)
        assert not terminated and not truncated


def test_point_mass_batched_by_hand():
    env = BatchedPointMass()
    goals = torch.tensor([PM_GOAL, PM_GOAL, PM_GOAL])
    start = torch.tensor(PM_START).expand(3, 2, 4)
    obs = env.reset(goals, episodes=2, initial_state=start)
    torch.testing.assert_close(obs, start)
    for action, expected_obs, expected_reward in zip(PM_ACTIONS, PM_OBS, PM_REWARDS):
        obs, rewards = env.step(torch.tensor(action).expand(3, 2, 2))
        torch.testing.assert_close(obs, torch.tensor(expected_obs).expand(3, 2, 4))
        torch.testing.assert_close(rewards, torch.full((3, 2), expected_reward))
        torch.testing.assert_close(env.positions, obs[..., :2])


def test_point_mass_random_start_range_and_seed():
    env = BatchedPointMass()
    goals = torch.zeros(50, 2)
    obs = env.reset(goals, 20, generator=torch.Generator().manual_seed(3))
    again = BatchedPointMass().reset(goals, 20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(obs, again)
    assert obs[..., :2].abs().max() <= 0.2 and obs[..., :2].abs().max() > 0.19
    assert obs[..., 2:].abs().max() <= 0.1 and obs[..., 2:].abs().max() > 0.09


# --- gymnasium registration ------------------------------------------------------------------

GYM_IDS = [spec.gym_id for spec in ENVIRONMENTS.values()]
PLANAR = sorted(name for name, spec in ENVIRONMENTS.items() if not spec.mujoco)  # the half-cheetah: test_rl_cheetah


@pytest.mark.filterwarnings("ignore:.*infinity:UserWarning", "ignore:.*symmetric and normalized:UserWarning")
@pytest.mark.parametrize("gym_id", GYM_IDS)
def test_check_env(gym_id):
    register_envs()  # idempotent
    env = gymnasium.make(gym_id)
    # no display here: the half-cheetah's rendering is gymnasium's own MuJoCo code, not ours
    check_env(env.unwrapped, skip_render_check=gym_id.startswith("mmaml/HalfCheetah"))
    assert env.spec.max_episode_steps == 100


def test_registered_ids_and_names():
    assert set(ENVIRONMENTS) == {
        "navigation",
        "navigation-bimodal",
        "pointmass-2modes",
        "pointmass-4modes",
        "pointmass-6modes",
        "cheetah-speed",
        "cheetah-location",
        "cheetah-location-ahead",
    }
    assert set(GYM_IDS) <= set(gymnasium.registry)
    assert gymnasium.make("mmaml/PointMass6Modes-v0").unwrapped.goal_distribution.num_modes == 6
    bimodal = gymnasium.make("mmaml/BimodalNavigation2D-v0").unwrapped
    assert bimodal.goal_distribution.modes == ("left", "right")
    with pytest.raises(ValueError, match="navigation-bimodal"):
        make_batched("navigation-trimodal")
    with pytest.raises(ValueError, match="pointmass-4modes"):
        make_goals("pointmass")


def test_gym_task_persists_across_resets_and_time_limit():
    env = gymnasium.make("mmaml/PointMass4Modes-v0")
    _, info = env.reset(seed=5)
    goal = info["goal"]
    assert env.unwrapped.mode in range(4)
    _, info = env.reset()
    np.testing.assert_array_equal(info["goal"], goal)
    env.unwrapped.set_task([1.0, -2.0])
    _, info = env.reset()
    np.testing.assert_array_equal(info["goal"], [1.0, -2.0])
    assert env.unwrapped.mode == 3  # nearest corner (5, -5)
    assert len(env.unwrapped.sample_tasks(7)) == 7
    for t in range(100):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated and truncated == (t == 99)


# --- batched == gymnasium ---------------------------------------------------------------------


@pytest.mark.parametrize("name", PLANAR)
def test_batched_matches_gym(name):
    num_tasks, episodes, steps = 3, 4, 100
    generator = torch.Generator().manual_seed(11)
    goals, _ = make_goals(name).sample(num_tasks, generator)
    batched = make_batched(name)
    batched.reset(goals, episodes, generator=generator)
    start = batched.state + 0.1 * torch.randn(batched.state.shape, generator=generator)
    obs = batched.reset(goals, episodes, initial_state=start)
    limit = 0.1 if name.startswith("navigation") else 10.0
    actions = 1.5 * limit * torch.randn(steps, num_tasks, episodes, 2, generator=generator)
    assert (actions.abs() > limit).any() and (actions.abs() < limit).any()
    batched_obs, batched_rewards = [obs], []
    for t in range(steps):
        obs, rewards = batched.step(actions[t])
        batched_obs.append(obs)
        batched_rewards.append(rewards)
    batched_obs_t = torch.stack(batched_obs, dim=2)  # [T, E, steps + 1, O]
    batched_rewards_t = torch.stack(batched_rewards, dim=2)  # [T, E, steps]

    env = gymnasium.make(ENVIRONMENTS[name].gym_id).unwrapped
    for i in range(num_tasks):
        for e in range(episodes):
            options = {"goal": goals[i].double().numpy(), "state": start[i, e].double().numpy()}
            obs, _ = env.reset(options=options)
            gym_obs, gym_rewards = [obs], []
            for t in range(steps):
                obs, reward, _, truncated, _ = env.step(actions[t, i, e].double().numpy())
                gym_obs.append(obs)
                gym_rewards.append(reward)
            assert truncated
            np.testing.assert_allclose(batched_obs_t[i, e].numpy(), np.stack(gym_obs), rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(batched_rewards_t[i, e].numpy(), gym_rewards, rtol=1e-5, atol=1e-4)


# --- horizon ---------------------------------------------------------------------------------


@pytest.mark.parametrize("batched_cls", [BatchedNavigation2D, BatchedPointMass])
def test_batched_step_past_horizon_raises(batched_cls):
    env = batched_cls()
    with pytest.raises(RuntimeError):
        env.step(torch.zeros(2, 1, 2))
    env.reset(torch.zeros(2, 2), 1, generator=torch.Generator().manual_seed(0))
    for _ in range(100):
        env.step(torch.zeros(2, 1, 2))
    assert env.done
    with pytest.raises(RuntimeError, match="100"):
        env.step(torch.zeros(2, 1, 2))
    env.reset(torch.zeros(2, 2), 1)
    env.step(torch.zeros(2, 1, 2))  # a reset starts a new episode


def test_gym_step_past_horizon_raises():
    env = Navigation2DEnv()
    env.reset(seed=0)
    for _ in range(100):
        env.step(np.zeros(2))
    with pytest.raises(RuntimeError):
        env.step(np.zeros(2))


# --- goal distributions ------------------------------------------------------------------------


def test_mode_counts_and_block_order():
    goals = point_mass_goals(4)
    assert goals.mode_counts(10) == [3, 3, 2, 2]
    assert goals.mode_counts(8) == [2, 2, 2, 2]
    _, mode = goals.sample(8, torch.Generator().manual_seed(0))
    assert mode.dtype == torch.int64
    assert mode.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    _, mode = point_mass_goals(6).sample(600, torch.Generator().manual_seed(0))
    assert torch.bincount(mode).tolist() == [100] * 6
    assert bool((mode[1:] >= mode[:-1]).all())


@pytest.mark.parametrize(
    "goals, std",
    [
        (bimodal_navigation_goals(), 0.2),
        (point_mass_goals(2), 1.0),
        (point_mass_goals(4), 1.0),
        (point_mass_goals(6), 1.0),
    ],
)
def test_per_mode_mean_near_centre(goals, std):
    samples, mode = goals.sample(1000 * goals.num_modes, torch.Generator().manual_seed(1))
    assert samples.shape == (1000 * goals.num_modes, 2) and samples.dtype == torch.float32
    for m in range(goals.num_modes):
        torch.testing.assert_close(samples[mode == m].mean(0), goals.centres[m], atol=0.15 * std, rtol=0)
        assert samples[mode == m].std(0).sub(std).abs().max() < 0.1 * std


def test_mode_centres():
    assert point_mass_goals(2).centres.tolist() == [[-5, -5], [5, 5]]
    assert point_mass_goals(4).centres.tolist() == [[5, 5], [-5, 5], [-5, -5], [5, -5]]
    hexagon = point_mass_goals(6).centres
    torch.testing.assert_close(hexagon[1], torch.tensor([2.5, 5 * math.sqrt(3) / 2]))
    torch.testing.assert_close(hexagon.norm(dim=1), torch.full((6,), 5.0))
    assert bimodal_navigation_goals().centres.tolist() == [[-1, 0], [1, 0]]
    assert navigation_goals().centres is None and navigation_goals().modes == ("uniform",)


@pytest.mark.parametrize("goals", [navigation_goals(), bimodal_navigation_goals(), point_mass_goals(6)])
def test_same_seed_same_goals(goals):
    a = goals.sample(20, torch.Generator().manual_seed(7))
    b = goals.sample(20, torch.Generator().manual_seed(7))
    c = goals.sample(20, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize(
    "goals, half_width",
    [(UniformGoals(-0.5, 0.5), 1.0), (bimodal_navigation_goals(), 3.0), (point_mass_goals(4), 12.0)],
)
def test_density_integrates_to_one(goals, half_width):
    n = 400
    axis = (torch.arange(n, dtype=torch.float64) + 0.5) / n * 2 * half_width - half_width
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
    density = goals.density(grid)
    assert density.shape == (n * n,) and bool((density >= 0).all())
    cell = (2 * half_width / n) ** 2
    assert density.sum().item() * cell == pytest.approx(1.0, abs=0.01)


def test_uniform_goals_within_range():
    goals, mode = navigation_goals().sample(5000, torch.Generator().manual_seed(2))
    assert bool((mode == 0).all())
    assert goals.min() >= -0.5 and goals.max() <= 0.5
    assert goals.min() < -0.49 and goals.max() > 0.49
    rng = np.random.default_rng(0)
    one, m = UniformGoals(-0.5, 0.5).sample_one(rng)
    assert one.shape == (2,) and one.dtype == np.float64 and m == 0 and np.all(np.abs(one) <= 0.5)


def test_sample_one_modes():
    goals = GaussianMixtureGoals([[-1.0, 0.0], [1.0, 0.0]], 0.2, ("left", "right"))
    rng = np.random.default_rng(0)
    draws = [goals.sample_one(rng) for _ in range(400)]
    modes = np.array([m for _, m in draws])
    assert 150 < (modes == 0).sum() < 250
    for goal, m in draws:
        assert goal.shape == (2,) and goal.dtype == np.float64
        assert goals.mode_of(goal) == m and np.sign(goal[0]) == (-1 if m == 0 else 1)


# --- reference returns ------------------------------------------------------------------------


def test_reference_returns_navigation():
    ref = reference_returns("navigation", num_tasks=2000, seed=0)
    assert ref["zero_action"]["mean"] == pytest.approx(-38.0, abs=2.0)
    assert 0 < ref["zero_action"]["ci95"] < 1.5
    assert -1.0 < ref["oracle"]["mean"] < -0.2


@pytest.mark.parametrize("name", ["pointmass-2modes", "pointmass-4modes"])
def test_reference_returns_point_mass(name):
    ref = reference_returns(name, num_tasks=1000, seed=0)
    assert -900 < ref["zero_action"]["mean"] < -700
    assert ref["oracle"]["mean"] > -120
    assert ref["oracle"]["mean"] - ref["zero_action"]["mean"] > 500


def test_reference_returns_other_envs_oracle_better():
    for name in ["navigation-bimodal", "pointmass-6modes"]:
        ref = reference_returns(name, num_tasks=500, seed=1)
        assert ref["oracle"]["mean"] > 0.1 * ref["zero_action"]["mean"]
