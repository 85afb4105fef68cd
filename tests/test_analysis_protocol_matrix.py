"""analysis/rl_protocol_matrix.py on hand-made run folders: validation choice, paired differences and
per-mode returns against numbers computed by hand."""

import csv
import json
import math
from pathlib import Path

import pytest

def write_run(run: Path, returns: list[list[float]], modes: list[int], validations: dict[int, list[float]],
              iterations: int = 40, seed: int = 7) -> None:
    """A run folder as `mmaml eval` leaves it: returns ``[S + 1][n]``, last and best evaluated alike."""
    run.mkdir(parents=True)
    for name in ("eval", "eval_best"):
        (run / f"{name}.json").write_text(json.dumps({
            "seed": seed, "num_tasks": len(modes), "iterations": iterations,
            "per_mode": {"left": {}, "right": {}}}))
        (run / f"{name}_per_task.json").write_text(json.dumps({"mode": modes, "returns_by_step": returns}))
    columns = ["iteration", "return_step0"] + [f"val_return_step{k}" for k in range(4)]
    with (run / "metrics.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for it in range(1, iterations + 1):
            values = validations.get(it)
            writer.writerow([it, -100.0] + (values if values else ["", "", "", ""]))


def test_matrix_pairs_the_methods_goal_by_goal_and_splits_by_mode(tmp_path, monkeypatch, analysis_script):
    modes = [0, 1, 0, 1]
    maml = [[-100.0, -102.0, -98.0, -104.0], [-30.0, -20.0, -25.0, -27.0], [-60.0, -50.0, -40.0, -70.0],
            [-20.0, -30.0, -22.0, -24.0]]
    mumo = [[-190.0, -40.0, -200.0, -36.0], [-20.0, -18.0, -24.0, -16.0], [-30.0, -25.0, -20.0, -35.0],
            [-21.0, -19.0, -23.0, -25.0]]
    # validation every 20 iterations: the best (by the return after one step) at 20 for MAML, at 40 for MuMoMAML
    write_run(tmp_path / "maml-s0", maml, modes, {20: [-99.0, -24.0, -50.0, -30.0], 40: [-98.0, -26.0, -60.0, -31.0]})
    write_run(tmp_path / "mumo-s0", mumo, modes, {20: [-90.0, -22.0, -30.0, -25.0], 40: [-95.0, -18.0, -28.0, -20.0]})
    out = tmp_path / "out"
    monkeypatch.setattr("sys.argv", ["rl_protocol_matrix.py", "--out", str(out), "--seeds", "0,1",
                                     "--cell", f"P={tmp_path}/maml-s{{seed}}:{tmp_path}/mumo-s{{seed}}"])
    analysis_script("rl_protocol_matrix").main()  # seed 1 has no runs: skipped, not an error
    result = json.loads((out / "matrix.json").read_text())
    assert set(result) == {"P, seed 0, best", "P, seed 0, last"}
    cell = result["P, seed 0, best"]
    assert cell["maml_validation"]["best_iteration"] == 20 and cell["mumomaml_validation"]["best_iteration"] == 40
    assert cell["mumomaml_validation"]["best"] == [-95.0, -18.0, -28.0, -20.0]
    assert cell["maml_validation"]["last"] == [-98.0, -26.0, -60.0, -31.0]
    for k in range(4):
        diffs = [b - a for a, b in zip(maml[k], mumo[k])]
        mean = sum(diffs) / 4
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 3)
        assert cell["difference_by_step"][k]["mean"] == pytest.approx(mean)
        # the project's 95% interval: 1.96 standard errors of the paired differences
        assert cell["difference_by_step"][k]["ci95"] == pytest.approx(1.96 * sd / 2)
        left = [diffs[i] for i in (0, 2)]
        assert cell["difference_by_step"][k]["per_mode"]["left"]["mean"] == pytest.approx(sum(left) / 2)
        for method, returns in (("maml", maml), ("mumomaml", mumo)):
            by_mode = cell[f"{method}_returns_by_mode"]
            assert by_mode["left"][k]["mean"] == pytest.approx((returns[k][0] + returns[k][2]) / 2)
            assert by_mode["right"][k]["mean"] == pytest.approx((returns[k][1] + returns[k][3]) / 2)
    table = (out / "matrix.md").read_text()
    assert "| P | 0 | best (40 / 40) | -24.00 / -18.00 |" in table


def test_runs_scored_on_other_goals_are_refused(tmp_path, monkeypatch, analysis_script):
    returns = [[-1.0, -2.0]] * 4
    write_run(tmp_path / "maml-s0", returns, [0, 1], {20: [-1.0, -1.0, -1.0, -1.0]}, seed=1)
    write_run(tmp_path / "mumo-s0", returns, [0, 1], {20: [-1.0, -1.0, -1.0, -1.0]}, seed=2)
    monkeypatch.setattr("sys.argv", ["rl_protocol_matrix.py", "--out", str(tmp_path / "out"), "--seeds", "0",
                                     "--cell", f"P={tmp_path}/maml-s{{seed}}:{tmp_path}/mumo-s{{seed}}"])
    with pytest.raises(SystemExit, match="not evaluated on the same goals"):
        analysis_script("rl_protocol_matrix").main()
