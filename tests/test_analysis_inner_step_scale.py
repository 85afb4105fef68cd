"""analysis/rl_inner_step_scale.py on a tiny trained run: unscaled, it is `mmaml eval` on the validation goals;
scaled, only the returns after the inner steps change."""

import json

import pytest

from mmaml.cli.main import main
from mmaml.runs import load_run

TINY = ["--set", "meta_batch_size=4", "--set", "episodes_per_task=2", "--set", "hidden_sizes=[8]",
        "--set", "validate_every=1", "--set", "validation_tasks=4", "--no-progress", "--no-tensorboard"]


def test_scaled_inner_steps_on_validation_goals(tmp_path, analysis_script):
    module = analysis_script("rl_inner_step_scale")
    run = tmp_path / "run"
    assert main(["train", "rl-navigation-mumomaml", "--out", str(run), "--iterations", "2", *TINY]) == 0
    scaled = module.returns_by_scale(str(run), "last", 8, 2, [1.0, 0.25, 0.0])
    # unscaled: what `mmaml eval` gives on the same goals (the validation seed's), by another path
    config, _, _ = load_run(str(run))
    assert main(["eval", str(run), "--tasks", "8", "--steps", "2", "--seed", str(config.validation_seed),
                 "--output", str(tmp_path / "val.json")]) == 0
    evaluated = [s["mean"] for s in json.loads((tmp_path / "val.json").read_text())["returns_by_step"]]
    assert scaled[1.0] == pytest.approx(evaluated, rel=1e-5, abs=1e-4)
    # step 0 comes before any inner step: the same for every scale; the steps after it differ
    assert scaled[0.25][0] == scaled[1.0][0] == scaled[0.0][0]
    assert scaled[0.25][1:] != scaled[1.0][1:]
