"""The ``threads`` and ``sim_threads`` settings: how ``auto`` resolves, what bad values say, what a run records."""

import pytest
import torch

from mmaml.errors import ConfigError
from mmaml.rl.config import RLConfig
from mmaml.supervised.config import ClassificationConfig, RegressionConfig
from mmaml.engine.config import apply_overrides, parse_assignment
from mmaml.engine.threads import (FAMILY_THREADS, configure_threads, environment_threads, family_threads, resolve_sim_threads, resolve_threads, usable_cpus)


@pytest.fixture
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_each_config_names_its_family():
    assert RegressionConfig().thread_family == "regression"
    assert ClassificationConfig().thread_family == "images"
    assert RLConfig(env="navigation-bimodal").thread_family == "rl-2d"
    assert RLConfig(env="pointmass-4modes").thread_family == "rl-2d"
    assert RLConfig(env="cheetah-speed").thread_family == "cheetah"
    assert set(FAMILY_THREADS) == {"regression", "images", "rl-2d", "cheetah"}


def test_auto_takes_omp_num_threads_then_the_family_default_capped_by_the_cpus(monkeypatch):
    monkeypatch.setitem(FAMILY_THREADS, "rl-2d", None)  # every usable CPU
    monkeypatch.setitem(FAMILY_THREADS, "regression", 1)
    assert resolve_threads("auto", "rl-2d", environ={}, cpus=6) == (6, "auto for rl-2d runs")
    assert resolve_threads("auto", "regression", environ={}, cpus=6) == (1, "auto for regression runs")
    assert resolve_threads("auto", "rl-2d", environ={}, cpus=6, local_world=4)[0] == 1  # 6 // 4
    assert resolve_threads("auto", "regression", environ={"OMP_NUM_THREADS": "3"}, cpus=6) == (3, "from OMP_NUM_THREADS")
    assert resolve_threads("auto", "regression", environ={"OMP_NUM_THREADS": " "}, cpus=6)[0] == 1  # empty: unset
    # a number in the config wins over everything
    assert resolve_threads(4, "regression", environ={"OMP_NUM_THREADS": "3"}, cpus=2) == (4, "set in the config")
    monkeypatch.setitem(FAMILY_THREADS, "images", 8)
    assert family_threads("images", cpus=2) == 2


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_omp_num_threads_is_named(value):
    with pytest.raises(ValueError, match=f"OMP_NUM_THREADS='{value}' is not a positive integer"):
        environment_threads({"OMP_NUM_THREADS": value})


def test_sim_threads_auto_is_every_usable_cpu():
    assert resolve_sim_threads("auto", cpus=5) == 5
    assert resolve_sim_threads(3, cpus=5) == 3
    assert resolve_sim_threads("auto") == usable_cpus()


@pytest.mark.parametrize("config", [RegressionConfig(), RLConfig()])
@pytest.mark.parametrize("text,expected", [("threads=auto", "auto"), ("threads=2", 2)])
def test_threads_accepts_auto_or_a_positive_number(config, text, expected):
    assert apply_overrides(config, dict([parse_assignment(text)])).validate().threads == expected


@pytest.mark.parametrize("config,key", [(RegressionConfig(), "threads"), (RLConfig(), "threads"), (RLConfig(), "sim_threads")])
@pytest.mark.parametrize("raw", ["0", "-1", "two", "true", "1.5"])
def test_a_bad_thread_count_is_refused_in_one_line(config, key, raw):
    with pytest.raises(ConfigError) as err:
        apply_overrides(config, dict([parse_assignment(f"{key}={raw}")])).validate()
    message = str(err.value)
    assert "\n" not in message and key in message and "auto" in message


def test_configure_applies_torch_threads_and_says_why(keep_torch_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    chosen = configure_threads(RegressionConfig(threads=2))
    assert torch.get_num_threads() == 2 and chosen["torch"] == 2
    assert chosen["line"] == "threads: torch 2 (set in the config)"
    chosen = configure_threads(RLConfig(env="cheetah-speed", threads=1, sim_threads="auto"))
    assert torch.get_num_threads() == 1
    assert chosen["physics"] == usable_cpus()
    assert chosen["line"].endswith(f"physics {usable_cpus()} (auto: every usable CPU)")
    assert "physics" not in configure_threads(RLConfig(env="navigation"))


def test_a_run_applies_and_records_its_threads_and_may_resume_with_others(tmp_path, keep_torch_threads, monkeypatch):
    from mmaml.engine.checkpoint import load_checkpoint
    from mmaml.presets import resolve
    from mmaml.engine.run_dir import checkpoint_path
    from mmaml.runs import make_trainer

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    config = apply_overrides(resolve("regression-2modes-maml"), {"iterations": 2, "threads": 2}).validate()
    trainer = make_trainer(config, tmp_path / "run", progress=False, tensorboard=False)
    assert torch.get_num_threads() == 2
    trainer.train()
    saved = load_checkpoint(checkpoint_path(tmp_path / "run"))
    assert saved["threads"] == {"torch": 2, "why": "set in the config"}
    more = apply_overrides(config, {"iterations": 3, "threads": 1})
    resumed = make_trainer(more, tmp_path / "run", resume=True, progress=False, tensorboard=False)
    assert torch.get_num_threads() == 1 and resumed.iteration == 2


def test_train_prints_the_threads_it_chose(tmp_path, capsys, keep_torch_threads, monkeypatch):
    from mmaml.cli.main import main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(["train", "regression-2modes-maml", "--out", str(tmp_path / "run"), "--iterations", "1",
                 "--no-progress", "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    assert "threads: torch 1 (from OMP_NUM_THREADS)" in out
    # the closing line says which loss it shows, unlike metrics.csv's window means
    assert "loss of the last meta-batch" in out and "metrics.csv: means over every log_every iterations" in out


def test_the_half_cheetah_env_gets_the_resolved_physics_threads():
    from mmaml.rl.builder import build_env

    env = build_env(RLConfig(env="cheetah-speed", sim_threads="auto").validate())
    assert env.physics.threads == usable_cpus()
    env = build_env(RLConfig(env="cheetah-speed", sim_threads=1).validate())
    assert env.physics.threads == 1


def test_a_half_cheetah_iteration_does_not_depend_on_the_physics_threads(keep_torch_threads):
    """``sim_threads: auto`` is safe to default to: a whole meta-iteration (sampling, inner step, TRPO step)
    ends at the same weights, to the last bit, with one physics thread or two."""
    from mmaml.rl.algorithm import RLAlgorithm

    torch.set_num_threads(1)
    weights = []
    for sim in (1, 2):
        config = RLConfig(method="mumomaml", env="cheetah-speed", meta_batch_size=2, episodes_per_task=2,
                          hidden_sizes=[8], encoder_hidden=8, embedding_dim=8, sim_threads=sim).validate()
        torch.manual_seed(0)
        algorithm = RLAlgorithm(config, torch.device("cpu"), torch.Generator().manual_seed(0))
        assert algorithm.env.physics.threads == sim
        row = algorithm.step()
        weights.append((row["return_step1"], [p.detach().clone() for p in algorithm.model.parameters()]))
    assert weights[0][0] == weights[1][0]
    assert all(torch.equal(a, b) for a, b in zip(weights[0][1], weights[1][1]))
