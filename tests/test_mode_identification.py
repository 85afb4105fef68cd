"""Mode identification from task embeddings: k-NN accuracy and silhouette behave as they must on embeddings
whose separation is known by construction, and `mmaml eval` reports them for MuMoMAML runs."""

import json

import pytest
import torch

from mmaml.cli.main import main
from mmaml.engine.mode_identification import mode_identification


def clusters(separation: float, n: int = 300, modes: int = 3, dim: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mode = torch.arange(n) % modes
    centres = torch.eye(modes, dim) * separation
    return centres[mode] + torch.randn(n, dim, generator=g), mode


def test_separable_embeddings_are_identified():
    emb, mode = clusters(separation=20.0)
    r = mode_identification(emb, mode, ["a", "b", "c"])
    assert r["knn_accuracy"] == 1.0 and r["linear_accuracy"] == 1.0 and r["silhouette"] > 0.8
    assert r["num_fit"] + r["num_scored"] == 300 and r["chance"] == pytest.approx(1 / 3, abs=0.01)
    assert r["confusion"]["b"] == {"a": 0.0, "b": 1.0, "c": 0.0}


def test_shuffled_modes_score_near_chance():
    emb, mode = clusters(separation=20.0, n=600)
    shuffled = mode[torch.randperm(600, generator=torch.Generator().manual_seed(1))]
    r = mode_identification(emb, shuffled, ["a", "b", "c"])
    assert abs(r["knn_accuracy"] - 1 / 3) < 0.08 and abs(r["silhouette"]) < 0.05
    assert abs(r["linear_accuracy"] - 1 / 3) < 0.08


def test_a_mode_in_one_direction_under_noise_in_many_is_found_by_the_linear_probe():
    """Two modes that differ by 1.5 standard deviations along one axis of 64 (noise in all): the distance-based
    k-NN stays far below the Bayes rate (77%), a linear probe finds the axis and comes near it."""
    g = torch.Generator().manual_seed(0)
    mode = torch.arange(2000) % 2
    emb = torch.randn(2000, 64, generator=g)
    emb[:, 0] += 1.5 * mode
    r = mode_identification(emb, mode, ["a", "b"])
    assert r["knn_accuracy"] < 0.67
    assert r["linear_accuracy"] > 0.72 and r["linear_accuracy"] - r["knn_accuracy"] > 0.06


def test_overlap_shows_in_the_confusion():
    """Modes 0 and 1 share one cluster, mode 2 has its own: 0 and 1 confuse each other only."""
    emb, mode = clusters(separation=20.0, n=600)
    emb[mode == 1] = emb[mode == 1] - torch.eye(3, 8)[1] * 20 + torch.eye(3, 8)[0] * 20
    r = mode_identification(emb, mode, ["a", "b", "c"])
    assert r["confusion"]["c"]["c"] == 1.0
    assert 0.2 < r["confusion"]["a"]["b"] < 0.8 and r["confusion"]["a"]["c"] == 0.0
    assert 0.5 < r["knn_accuracy"] < 0.85


def test_too_few_tasks_or_one_mode_refused():
    with pytest.raises(ValueError, match="at least 4 tasks"):
        mode_identification(torch.zeros(10, 2), torch.zeros(10, dtype=torch.long), ["a"])


def test_eval_reports_mode_identification_for_mumomaml_only(tmp_path, capsys):
    small = ["--iterations", "2", "--no-progress", "--no-tensorboard", "--set", "meta_batch_size=10"]
    for name in ("regression-2modes-film", "regression-2modes-maml"):
        assert main(["train", name, "--out", str(tmp_path / name), *small]) == 0
        assert main(["eval", str(tmp_path / name), "--tasks", "40"]) == 0
    out = capsys.readouterr().out
    film = json.loads((tmp_path / "regression-2modes-film" / "eval.json").read_text())
    maml = json.loads((tmp_path / "regression-2modes-maml" / "eval.json").read_text())
    r = film["mode_identification"]
    assert 0 <= r["knn_accuracy"] <= 1 and -1 <= r["silhouette"] <= 1 and r["num_scored"] == 20
    assert set(r["confusion"]) == {"sinusoid", "linear"}
    assert "mode_identification" not in maml
    assert out.count("mode identification from the task embeddings") == 1


def test_many_tasks_are_subsampled_with_every_mode_kept():
    emb, mode = clusters(separation=20.0, n=9000)
    r = mode_identification(emb, mode, ["a", "b", "c"])
    assert 3990 <= r["num_fit"] + r["num_scored"] <= 4000 and r["knn_accuracy"] == 1.0
    assert r["chance"] == pytest.approx(1 / 3, abs=0.01)


@pytest.mark.parametrize("n, modes", [(4002, 3), (4001, 2), (4005, 5)])
def test_a_few_tasks_over_the_cap_still_subsample(n, modes):
    """Just over the cap (an evaluation of 4,000 tasks rounded up to a multiple of 3 modes is 4,002):
    every mode keeps its share and the split still has every mode on both sides."""
    emb, mode = clusters(separation=20.0, n=n, modes=modes)
    r = mode_identification(emb, mode, "abcde"[:modes])
    assert 3990 <= r["num_fit"] + r["num_scored"] <= 4000 and r["knn_accuracy"] == 1.0
    assert r["chance"] == pytest.approx(1 / modes, abs=0.01)
