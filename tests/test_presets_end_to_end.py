"""Every preset trains, evaluates and plots through the CLI (one iteration, paper sizes)."""

import json
import re
from pathlib import Path

import pytest

from mmaml.cli.main import main
from mmaml.training.presets import PRESETS

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_train_and_eval_every_preset(tmp_path, preset):
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


def test_readme_python_example_runs():
    text = README.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert "mmaml.MuMoMAML" in code and "range(1000)" in code
    namespace: dict = {}
    exec(compile(code.replace("range(1000)", "range(3)"), "README.md", "exec"), namespace)
    assert namespace["loss"].item() > 0
