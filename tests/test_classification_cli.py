"""Image-classification runs through the CLI on the real Omniglot and Tiny ImageNet copies."""

import json
from pathlib import Path

import pytest

from mmaml.cli.main import main
from mmaml.presets import PRESETS, resolve

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(
    not ((SHARED / "omniglot" / "images_background.npz").exists() and (SHARED / "tiny-imagenet-200").exists()),
    reason=f"Omniglot and Tiny ImageNet copies not found in {SHARED}",
)
SMALL = ["--set", "images_per_class=20", "--set", "channels=[8,8,8,8]", "--set", "inner_steps=1",
         "--no-progress", "--no-tensorboard"]


def test_classification_presets_have_the_paper_settings():
    c = resolve("classification-5modes-mumomaml-20w1s").validate()
    assert c.datasets == ["omniglot", "mini_imagenet", "fc100", "cub", "aircraft"]
    assert (c.num_ways, c.num_shots, c.num_query, c.image_size) == (20, 1, 15, 84)
    assert (c.inner_lr, c.inner_steps, c.inner_grad_clip, c.iterations, c.channels) == (0.05, 5, 20.0, 60000,
                                                                                      [32, 64, 128, 256])
    cpu = [p for p in PRESETS if p.startswith("classification-cpu-")]
    assert len(cpu) == 12 and all(resolve(p).image_size == 28 for p in cpu)
    assert c.modulated_layers is None  # the paper modulates every conv block
    assert all(resolve(p).modulated_layers == [0, 1, 2] for p in cpu if "mumomaml" in p)


def test_modulated_conv_blocks_can_be_chosen():
    from mmaml.errors import ConfigError
    from mmaml.kinds import build_model
    from mmaml.engine.config import apply_overrides, parse_assignment

    def override(text):
        return apply_overrides(resolve("classification-cpu-2modes-mumomaml-5w1s"), dict([parse_assignment(text)]))

    config = override("modulated_layers=[0,2]")
    model = build_model(config.validate())
    assert list(model.learner.sites) == ["blocks.0.norm", "blocks.2.norm"]
    assert len(model.modulation_network.heads) == 2
    assert len(build_model(resolve("classification-2modes-mumomaml-5w1s")).learner.sites) == 4
    assert len(build_model(resolve("classification-cpu-2modes-mumomaml-5w1s")).learner.sites) == 3
    for bad in ("modulated_layers=[4]", "modulated_layers=[1,1]", "modulated_layers=[]"):
        with pytest.raises(ConfigError, match="modulated_layers"):
            override(bad).validate()


@needs_data
def test_train_eval_plot_a_cpu_preset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMAML_DATA", str(SHARED))
    monkeypatch.setenv("MMAML_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["train", "classification-cpu-2modes-mumomaml-5w1s", "--out", str(run), "--iterations", "2",
                 *SMALL]) == 0
    assert main(["eval", str(run), "--tasks", "8"]) == 0
    result = json.loads((run / "eval.json").read_text())
    for key in ("post_modulation_accuracy", "post_adaptation_accuracy"):
        assert 0 <= result[key]["mean"] <= 1 and set(result[key]) == {"mean", "ci95"}
        assert set(result["per_mode"]) == {"omniglot", "tiny_imagenet"}
        assert set(result["per_mode"]["omniglot"][key]) == {"mean", "ci95"}
    assert "query accuracy" in capsys.readouterr().out
    assert main(["plot", str(run)]) == 0
    assert (run / "figures" / "tsne.png").stat().st_size > 10_000


def test_missing_data_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMAML_DATA", str(tmp_path / "nodata"))
    monkeypatch.setenv("MMAML_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["train", "classification-cpu-2modes-maml-5w1s", "--out", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Omniglot not found" in err and "MMAML_DATA" in err and "\n" not in err
    assert not run.exists()
