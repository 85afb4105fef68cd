"""Half-cheetah target speed and location: the batched MuJoCo physics against gymnasium's HalfCheetah-v5,
the task rewards against hand computation, the task distributions and a short CLI run (check_env: test_rl_envs)."""

from __future__ import annotations

import json

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch

import mmaml.rl.envs  # noqa: F401  (registers the ids)
from mmaml.cli.main import main
from mmaml.rl.envs.goals import cheetah_location_goals, cheetah_speed_goals
from mmaml.rl.envs.half_cheetah import BatchedHalfCheetah, HalfCheetahTaskEnv, cheetah_model, cheetah_xml
from mmaml.rl.envs.mujoco_batch import BatchedMujoco
from mmaml.rl.envs.registry import reference_returns
from mmaml.engine.checkpoint import load_checkpoint
from mmaml.engine.metrics_log import read_metrics

DT = 0.05


def gym_cheetah(disable_warmstart: bool = False):
    env = gym.make("HalfCheetah-v5", exclude_current_positions_from_observation=False).unwrapped
    env.reset(seed=0)
    if disable_warmstart:
        env.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_WARMSTART
    return env


def gym_rollout(start: np.ndarray, actions: np.ndarray, disable_warmstart: bool = False):
    """gymnasium HalfCheetah-v5 from ``start [18]`` (qpos, qvel) under ``actions [H, 6]``:
    states ``[H, 18]``, x-velocities ``[H]``, x-positions ``[H]``."""
    env = gym_cheetah(disable_warmstart)
    env.set_state(start[:9], start[9:])
    states, velocities, positions = [], [], []
    for a in actions:
        obs, _, _, _, info = env.step(a)
        states.append(obs)
        velocities.append(info["x_velocity"])
        positions.append(info["x_position"])
    return np.array(states), np.array(velocities), np.array(positions)


def random_actions(steps: int, shape: tuple[int, ...], seed: int, scale: float = 1.3) -> torch.Tensor:
    """Uniform actions in [-scale, scale]: with scale > 1 some fall outside the actuators' range."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, *shape, 6, generator=g) * 2 - 1) * scale


def model_arrays(model: mujoco.MjModel) -> dict[str, np.ndarray]:
    return {name: getattr(model, name) for name in dir(model)
            if not name.startswith("_") and isinstance(getattr(model, name, None), np.ndarray)}


def test_model_is_gymnasiums_array_for_array_without_mujocos_deprecation_log(tmp_path, monkeypatch, capfd):
    """gymnasium's XML sets the deprecated ``settotalmass``: loading it as is warns and writes
    MUJOCO_LOG.TXT into the working directory. Ours applies the total mass after compiling."""
    monkeypatch.chdir(tmp_path)
    ours = cheetah_model()
    task_env = HalfCheetahTaskEnv("speed")
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    assert "deprecated" not in "".join(capfd.readouterr())
    assert ours.body_mass.sum() == pytest.approx(14.0, rel=1e-12)  # the XML's settotalmass
    unscaled = mujoco.MjModel.from_xml_string(open(cheetah_xml()).read().replace('settotalmass="14"', ""))
    assert unscaled.body_mass.sum() > 20  # the attribute matters
    reference = mujoco.MjModel.from_xml_path(cheetah_xml())  # MuJoCo's own handling of the attribute
    for model in (ours, task_env.model):
        arrays, expected = model_arrays(model), model_arrays(reference)
        assert arrays.keys() == expected.keys() and len(arrays) > 100
        for name, value in expected.items():
            np.testing.assert_array_equal(arrays[name], value, err_msg=name)


def test_loop_backend_is_gymnasium_bit_for_bit():
    env = BatchedHalfCheetah("location", backend="loop")
    env.reset(torch.tensor([[3.0], [-3.0]]), 2, torch.Generator().manual_seed(0))
    start = env.initial_state_copy().numpy()
    actions = random_actions(100, (2, 2), seed=1)
    ours = []
    for a in actions:
        env.step(a)
        ours.append(env.initial_state_copy().numpy())
    ours = np.stack(ours, axis=2)  # [T, E, H, 18]
    for t in range(2):
        for e in range(2):
            states, _, _ = gym_rollout(start[t, e], np.clip(actions[:, t, e].double().numpy(), -1, 1))
            np.testing.assert_array_equal(ours[t, e], states)


@pytest.mark.parametrize("threads", [1, 2])
def test_rollout_backend_is_gymnasium_bit_for_bit_without_warm_start(threads):
    """mujoco.rollout cannot hand back each copy's solver warm start; with warm starts off on both
    sides, nothing else differs, to the last bit, for any number of threads."""
    model = cheetah_model()
    model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_WARMSTART
    physics = BatchedMujoco(model, 5, threads=threads)
    rng = np.random.default_rng(2)
    start = np.concatenate([rng.uniform(-0.1, 0.1, (3, 9)), 0.1 * rng.standard_normal((3, 9))], axis=1)
    actions = rng.uniform(-1, 1, (100, 3, 6))
    physics.reset(start)
    ours = np.stack([physics.step(a) for a in actions], axis=1)  # [3, H, 18]
    physics.close()
    for i in range(3):
        states, _, _ = gym_rollout(start[i], actions[:, i], disable_warmstart=True)
        np.testing.assert_array_equal(ours[i], states)


def test_rollout_backend_with_warm_start_tracks_gymnasium_and_ignores_thread_count():
    rng = np.random.default_rng(3)
    start = np.concatenate([rng.uniform(-0.1, 0.1, (4, 9)), 0.1 * rng.standard_normal((4, 9))], axis=1)
    actions = rng.uniform(-1, 1, (30, 4, 6))
    runs = []
    for threads in (1, 2):
        physics = BatchedMujoco(cheetah_model(), 5, threads=threads)
        physics.reset(start)
        runs.append(np.stack([physics.step(a) for a in actions], axis=1))
        physics.close()
    np.testing.assert_array_equal(runs[0], runs[1])
    for i in range(4):
        states, _, _ = gym_rollout(start[i], actions[:, i])
        # the solver's tolerance, amplified by contacts: 1e-12 after 10 steps, 1e-9 after 25 (measured)
        assert np.abs(runs[0][i] - states).max() < 1e-6


@pytest.mark.parametrize("task", ["speed", "location"])
def test_batched_rewards_and_observations_match_hand_computation(task):
    goals = torch.tensor([[2.1], [-0.9]]) if task == "speed" else torch.tensor([[2.5], [-3.5]])
    env = BatchedHalfCheetah(task, backend="loop")
    obs0 = env.reset(goals, 2, torch.Generator().manual_seed(4))
    start = env.initial_state_copy().numpy()
    actions = random_actions(100, (2, 2), seed=5)
    rewards = torch.stack([env.step(a)[1] for a in actions], dim=-1)  # [T, E, H]
    assert obs0.shape == (2, 2, 17 if task == "speed" else 18)
    for t in range(2):
        for e in range(2):
            clipped = np.clip(actions[:, t, e].double().numpy(), -1, 1)
            _, velocity, position = gym_rollout(start[t, e], clipped)
            ctrl = 0.05 * (clipped**2).sum(axis=1)
            target = float(goals[t, 0])
            by_hand = -np.abs((velocity if task == "speed" else position) - target) - ctrl
            np.testing.assert_allclose(rewards[t, e].double().numpy(), by_hand, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("task", ["speed", "location"])
def test_gymnasium_task_env_rewards_match_hand_computation(task):
    env = gym.make(f"mmaml/HalfCheetah{task.capitalize()}-v0")
    goal = 1.7 if task == "speed" else -2.8
    obs, info = env.reset(seed=6, options={"goal": goal})
    assert info["goal"] == goal and obs.shape == (17 if task == "speed" else 18,)
    rng = np.random.default_rng(7)
    x = float(env.unwrapped.data.qpos[0])
    steps = 0
    while True:
        action = rng.uniform(-1.5, 1.5, 6)
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        clipped = np.clip(action, -1, 1)
        moved = info["x_position"] - x
        value = moved / DT if task == "speed" else info["x_position"]
        assert reward == pytest.approx(-abs(value - goal) - 0.05 * float(clipped @ clipped), abs=1e-9)
        x = info["x_position"]
        assert not terminated
        if truncated:
            break
    assert steps == 100
    # the task persists across resets unless a new one is given
    env.reset()
    assert env.unwrapped.goal == goal


def test_task_distributions_balanced_seeded_and_in_range():
    for distribution, low_mode, high_mode in ((cheetah_speed_goals(), (-1.75, -0.25), (1.25, 2.75)),
                                              (cheetah_location_goals(), (-4.5, -1.5), (1.5, 4.5))):
        goals, mode = distribution.sample(40, torch.Generator().manual_seed(8))
        again, _ = distribution.sample(40, torch.Generator().manual_seed(8))
        assert torch.equal(goals, again) and goals.shape == (40, 1)
        assert mode.tolist() == [0] * 20 + [1] * 20
        for m, (lo, hi) in enumerate((low_mode, high_mode)):
            values = goals[mode == m, 0]
            assert ((values > lo) & (values < hi)).all()  # 3 spreads around the centre
            assert all(distribution.mode_of([float(v)]) == m for v in values)


def test_unimodal_location_anchor_is_the_ahead_mode_alone():
    """``cheetah-location-ahead``: every goal from the bimodal task's "ahead" Gaussian, one mode, bad subsets refused."""
    import gymnasium

    from mmaml.rl.envs.registry import make_goals, register_envs

    ahead = make_goals("cheetah-location-ahead")
    assert ahead.modes == ("ahead",)
    goals, mode = ahead.sample(400, torch.Generator().manual_seed(3))
    assert mode.eq(0).all() and ((goals > 1.0) & (goals < 5.0)).all()  # 4 spreads about 3
    assert goals.mean().item() == pytest.approx(3.0, abs=3 * 0.5 / 20)  # N(3, 0.5^2): mean within 3 standard errors
    assert goals.std().item() == pytest.approx(0.5, rel=0.15)
    register_envs()
    env = gymnasium.make("mmaml/HalfCheetahLocationAhead-v0").unwrapped
    assert env.observation_space.shape == (18,)  # x observed, as in the bimodal task
    _, info = env.reset(seed=4)
    assert env.mode == 0 and 1.5 < info["goal"] < 4.5
    with pytest.raises(ValueError, match="behind"):
        cheetah_location_goals(("left",))
    with pytest.raises(ValueError, match="both its modes"):
        HalfCheetahTaskEnv("speed", modes=("ahead",))


def test_zero_action_reference_is_minus_horizon_times_mean_absolute_target():
    """Standing still earns -|v*| (speed) or about -|x*| (location) per step: -100 E|target|."""
    for name, distribution in (("cheetah-speed", cheetah_speed_goals()), ("cheetah-location", cheetah_location_goals()),
                               ("cheetah-location-ahead", cheetah_location_goals(("ahead",)))):
        refs = reference_returns(name, 200, seed=9)
        goals, _ = distribution.sample(200, torch.Generator().manual_seed(9))
        expected = -100 * goals.abs().mean().item()
        assert set(refs) == {"zero_action"}
        assert refs["zero_action"]["mean"] == pytest.approx(expected, rel=0.05)


TINY = ["--set", "meta_batch_size=2", "--set", "episodes_per_task=2", "--set", "hidden_sizes=[8]",
        "--set", "encoder_hidden=8", "--set", "embedding_dim=8", "--set", "checkpoint_every=1",
        "--set", "eval_tasks=2", "--no-progress", "--no-tensorboard"]


def test_cheetah_run_trains_resumes_exactly_evaluates_and_plots(tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", "rl-cheetah-location-mumomaml", "--out", str(full), "--iterations", "2", *TINY]) == 0
    assert main(["train", "rl-cheetah-location-mumomaml", "--out", str(part), "--iterations", "1", *TINY]) == 0
    torch.manual_seed(99)
    assert main(["train", "rl-cheetah-location-mumomaml", "--out", str(part), "--iterations", "2", "--resume",
                 *TINY]) == 0
    a, b = load_checkpoint(full / "checkpoint.pt")["model"], load_checkpoint(part / "checkpoint.pt")["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["return_step1"] for r in read_metrics(part)] == [r["return_step1"] for r in read_metrics(full)]
    assert main(["eval", str(full), "--tasks", "2", "--steps", "1"]) == 0
    result = json.loads((full / "eval.json").read_text())
    assert set(result["per_mode"]) == {"behind", "ahead"} and len(result["returns_by_step"]) == 2
    assert set(result["reference_returns"]) == {"zero_action"}
    assert main(["plot", str(full), "--out", str(tmp_path / "fig")]) == 0
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == [
        "adaptation_curve.png", "learning_curves.png", "trajectories_full.png", "tsne_full.png"]
