"""Every preset trains, evaluates and plots through the CLI (one iteration, paper sizes)."""

import json
import re

import pytest

from mmaml.cli.main import main
from mmaml.presets import PRESETS



@pytest.mark.parametrize("preset", sorted(p for p in PRESETS if p.startswith("regression-")))
def test_train_and_eval_every_regression_preset(tmp_path, preset):
    run_dir = tmp_path / preset
    assert main(["train", preset, "--out", str(run_dir), "--iterations", "1", "--no-progress",
                 "--no-tensorboard"]) == 0
    assert main(["eval", str(run_dir), "--tasks", "10"]) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    n_modes = int(re.search(r"(\d)modes", preset).group(1))
    assert len(result["per_mode"]) == n_modes
    if preset.endswith("-film") and not preset.startswith("regression-2modes"):  # 2 modes: see test_cli
        assert main(["plot", str(run_dir)]) == 0
        assert (run_dir / "figures" / "figure2c_tsne.png").exists()


@pytest.mark.parametrize("preset", sorted(p for p in PRESETS if p.startswith("classification-")))
def test_every_classification_preset_builds_and_runs_one_task(preset):
    """Without data: the preset's meta-learner adapts to one random task of the preset's shape; one inner step
    lowers the loss on the images it was taken on (the query set here is the support set)."""
    import torch

    from mmaml.tasks.batch import TaskBatch
    from mmaml.kinds import build_model
    from mmaml.presets import resolve

    c = resolve(preset).validate()
    model = build_model(c)
    n, k, s = c.num_ways, c.num_shots, c.image_size
    labels = torch.arange(n).repeat_interleave(k).unsqueeze(0)
    images = torch.rand(1, n * k, 3, s, s)
    batch = TaskBatch(images, labels, images, labels, torch.zeros(1, dtype=torch.long))
    out = model(batch, steps=1, with_prior=True)
    assert out.query_pred.shape == (1, n * k, n)
    assert float(out.query_loss.detach()) < float(out.prior_query_loss.detach())


@pytest.mark.parametrize("preset", sorted(p for p in PRESETS if p.startswith("rl-")))
def test_every_rl_preset_trains_and_evaluates_per_mode(tmp_path, preset):
    """One small iteration of each meta-RL preset through the CLI, then returns by step for every goal mode."""
    from mmaml.presets import resolve

    modes = resolve(preset).validate().mode_names
    run_dir = tmp_path / preset
    small = ["--set", f"meta_batch_size={len(modes)}", "--set", "episodes_per_task=2", "--set", "hidden_sizes=[8]",
             "--set", "encoder_hidden=8", "--set", "embedding_dim=8"]
    assert main(["train", preset, "--out", str(run_dir), "--iterations", "1", "--no-progress", "--no-tensorboard",
                 *small]) == 0
    assert main(["eval", str(run_dir), "--tasks", str(2 * len(modes)), "--steps", "1"]) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    assert list(result["per_mode"]) == modes
    assert all(m["num_tasks"] == 2 for m in result["per_mode"].values())
    assert len(result["returns_by_step"]) == 2
    zero = result["reference_returns"]["zero_action"]["mean"]
    assert all(r["mean"] < 0 for r in result["returns_by_step"]) and zero < 0
