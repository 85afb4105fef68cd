"""Validation goals and the best checkpoint of a meta-RL run.

Validation scores the policy on goals of ``validation_seed`` every ``validate_every``
iterations; it must not change training, must never touch the training stream or the
test goals, and ``best.pt`` must hold the iteration with the best validation score.
"""

import pytest
import torch

from mmaml.cli.main import main
from mmaml.errors import ConfigError
from mmaml.rl.config import RLConfig
from mmaml.rl.envs.registry import make_goals
from mmaml.rl.evaluation import sample_test_goals
from mmaml.engine.checkpoint import load_checkpoint
from mmaml.kinds import saved_config_from_dict
from mmaml.engine.metrics_log import read_metrics
from mmaml.runs import make_trainer


def small(**values) -> RLConfig:
    base = dict(method="maml", env="navigation-bimodal", meta_batch_size=4, episodes_per_task=3, hidden_sizes=[8],
                iterations=5, log_every=1, checkpoint_every=5, validate_every=1, validation_tasks=4,
                eval_inner_steps=2, max_kl=0.05)
    return RLConfig(**{**base, **values}).validate()


def train(tmp_path, name, **values):
    trainer = make_trainer(small(**values), tmp_path / name, progress=False, tensorboard=False)
    trainer.train()
    return trainer


def test_validation_leaves_training_as_it_was_and_logs_every_step(tmp_path):
    with_validation = train(tmp_path, "validated")
    without = train(tmp_path, "plain", validate_every=0)
    for a, b in zip(with_validation.model.parameters(), without.model.parameters()):
        assert torch.equal(a, b)
    rows = read_metrics(tmp_path / "validated")
    assert all(f"val_return_step{k}" in rows[0] for k in range(3))  # 0..eval_inner_steps
    assert all(r["val_return_step1"] < 0 for r in rows)  # a navigation return, logged every iteration
    assert "val_return_step0" not in read_metrics(tmp_path / "plain")[0]


def test_best_checkpoint_is_the_iteration_with_the_best_validation_return(tmp_path):
    trainer = train(tmp_path, "run", validate_every=1, iterations=6, max_kl=0.2)
    rows = read_metrics(tmp_path / "run")
    scores = [r["val_return_step1"] for r in rows]  # after inner_steps (1) steps
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["iteration"] == int(rows[scores.index(max(scores))]["iteration"])
    assert best["best_score"] == pytest.approx(max(scores), rel=1e-5)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["best_score"] == trainer.best_score
    assert len(set(scores)) > 1  # the choice was among different scores


def test_validation_goals_are_a_stream_of_their_own(monkeypatch, tmp_path):
    config = small()
    distribution = make_goals(config.env)
    validation, _, _ = sample_test_goals(distribution, 40, config.validation_seed)
    test, _, _ = sample_test_goals(distribution, 40, config.eval_seed)
    training, _ = distribution.sample(40, torch.Generator().manual_seed(config.seed))
    for a, b in ((validation, test), (validation, training), (test, training)):
        assert torch.cdist(a, b).min() > 0  # no goal shared between the three sets
    seeds = []
    import mmaml.rl.algorithm as algorithm

    real = algorithm.per_task_returns
    monkeypatch.setattr(algorithm, "per_task_returns", lambda *a: seeds.append(a[5]) or real(*a))
    train(tmp_path, "run", iterations=2)
    assert seeds == [config.validation_seed] * 2  # selection never sees eval_seed's test goals
    for clash in ("seed", "eval_seed"):
        with pytest.raises(ConfigError, match="validation_seed"):
            small(validation_seed=getattr(config, clash))


def test_eval_of_the_best_checkpoint_and_runs_that_have_none(tmp_path, capsys):
    import json

    train(tmp_path, "run", iterations=3)
    assert main(["eval", str(tmp_path / "run"), "--checkpoint", "best", "--tasks", "4"]) == 0
    result = json.loads((tmp_path / "run" / "eval_best.json").read_text())
    assert result["checkpoint"] == "best"
    assert result["iterations"] == load_checkpoint(tmp_path / "run" / "best.pt")["iteration"]
    assert not (tmp_path / "run" / "eval.json").exists()
    train(tmp_path, "plain", validate_every=0, iterations=2)
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "plain"), "--checkpoint", "best", "--tasks", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no best.pt" in err and "--checkpoint last" in err


def test_runs_saved_before_validation_do_not_validate():
    saved = small().to_dict()
    del saved["validate_every"]
    assert saved_config_from_dict(saved).validate_every == 0
