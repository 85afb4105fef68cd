"""``mmaml reproduce figure3`` on tiny budgets: every RL row trained, evaluated on shared goals, tabulated and
plotted; finished rows skipped, short rows resumed; bad input refused before anything runs."""

import csv
import json

import pytest

from mmaml.cli.main import main
from mmaml.engine.checkpoint import load_checkpoint

TINY = ["--set", "meta_batch_size=2", "--set", "episodes_per_task=2", "--set", "hidden_sizes=[8]",
        "--set", "encoder_hidden=8", "--set", "embedding_dim=8", "--set", "eval_inner_steps=1",
        "--eval-tasks", "4", "--no-progress"]


@pytest.fixture(scope="module")
def figure_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("figure3")
    assert main(["reproduce", "figure3", "--out", str(out), "--iterations", "1", "--jobs", "2", *TINY]) == 0
    return out


def test_every_row_tabulated_with_paired_differences(figure_dir):
    rows = list(csv.DictReader((figure_dir / "figure3.csv").open()))
    assert [(r["env"], r["method"], r["step"]) for r in rows] == [
        (env, method, str(step)) for env in ("navigation", "cheetah-speed", "cheetah-location")
        for method in ("MAML", "MuMoMAML") for step in (0, 1)]
    for r in rows:
        assert r["iterations"] == "1" and r["test_tasks"] == "4" and float(r["train_seconds"]) > 0
        assert float(r["mean"]) < 0 and float(r["ci95"]) >= 0
    by_key = {(r["env"], r["method"], r["step"]): r for r in rows}
    for env in ("navigation", "cheetah-speed", "cheetah-location"):
        for step in ("0", "1"):
            maml, mumo = by_key[(env, "MAML", step)], by_key[(env, "MuMoMAML", step)]
            assert maml["vs_maml_mean"] == ""
            # the same test goals for both rows: the paired difference is the difference of the means
            assert float(mumo["vs_maml_mean"]) == pytest.approx(float(mumo["mean"]) - float(maml["mean"]), abs=1e-3)
    md = (figure_dir / "figure3.md").read_text()
    assert "| half-cheetah target location | **MuMoMAML - MAML (paired)** |" in md
    assert "References on the same goals, half-cheetah target speed: zero action" in md


def test_figures_written(figure_dir):
    figs = figure_dir / "figures"
    for path in ("figure3_adaptation.png", "navigation/trajectories_rl-navigation-mumomaml.png",
                 "cheetah-speed/trajectories_rl-cheetah-speed-maml.png",
                 "cheetah-location/tsne_rl-cheetah-location-mumomaml.png"):
        assert (figs / path).read_bytes()[:4] == b"\x89PNG", path


def test_finished_rows_skipped_and_short_rows_resumed(figure_dir, capsys):
    ckpt = figure_dir / "rl-cheetah-speed-mumomaml" / "checkpoint.pt"
    before = ckpt.stat().st_mtime_ns
    assert main(["reproduce", "figure3", "--out", str(figure_dir), "--iterations", "1",
                 "--envs", "cheetah-speed", *TINY]) == 0
    out = capsys.readouterr().out
    assert "rl-cheetah-speed-mumomaml: done (1 iterations), skipped" in out
    assert ckpt.stat().st_mtime_ns == before
    assert main(["reproduce", "figure3", "--out", str(figure_dir), "--iterations", "2",
                 "--envs", "navigation", "--methods", "maml", *TINY]) == 0
    assert "rl-navigation-maml: resuming from iteration 1 to 2 iterations" in capsys.readouterr().out
    assert load_checkpoint(figure_dir / "rl-navigation-maml" / "checkpoint.pt")["iteration"] == 2
    assert json.loads((figure_dir / "rl-navigation-maml" / "eval.json").read_text())["iterations"] == 2
    rows = list(csv.DictReader((figure_dir / "figure3.csv").open()))
    assert {r["iterations"] for r in rows if r["env"] == "navigation" and r["method"] == "MAML"} == {"2"}


@pytest.mark.parametrize("args, needle", [
    (["--envs", "ant"], "ant"),
    (["--methods", "film"], "film"),
    (["--set", "max_kl=-1"], "max_kl"),
    (["--set", "no_such_key=1"], "no_such_key"),
])
def test_bad_input_is_one_line_and_nothing_runs(tmp_path, capsys, args, needle):
    out = tmp_path / "fig"
    assert main(["reproduce", "figure3", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not out.exists()


def test_rows_of_another_outer_loop_are_refused(figure_dir, capsys):
    # the folder's rows were trained with the presets' ProMP outer loop: a PPO command must not take them as its own
    table = (figure_dir / "figure3.csv").read_bytes()
    assert main(["reproduce", "figure3", "--out", str(figure_dir), "--iterations", "1", "--envs", "cheetah-speed",
                 *TINY, "--set", "outer_optimizer=ppo"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "outer_optimizer: 'promp' there, 'ppo' asked" in err
    assert (figure_dir / "figure3.csv").read_bytes() == table


def test_best_checkpoints_scored_and_tabulated_beside_the_last(tmp_path, capsys):
    """--checkpoint best: each row's best.pt (by validation) scored on the same test goals, into figure3_best.*,
    while figure3.* stays the last checkpoints'."""
    out = tmp_path / "fig"
    validated = ["--set", "validate_every=1", "--set", "validation_tasks=2"]
    assert main(["reproduce", "figure3", "--out", str(out), "--iterations", "3", "--envs", "navigation",
                 "--checkpoint", "best", *TINY, *validated]) == 0
    assert "figure3_best.md" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "figure3_best.csv").open()))
    assert {(r["env"], r["method"]) for r in rows} == {("navigation", "MAML"), ("navigation", "MuMoMAML")}
    for method in ("maml", "mumomaml"):
        run = out / f"rl-navigation-{method}"
        best = load_checkpoint(run / "best.pt")["iteration"]
        result = json.loads((run / "eval_best.json").read_text())
        assert result["checkpoint"] == "best" and result["iterations"] == best and result["num_tasks"] == 4
        assert json.loads((run / "eval.json").read_text())["iterations"] == 3
        assert {r["iterations"] for r in rows if r["method"] == ("MAML" if method == "maml" else "MuMoMAML")} == {
            str(best)}
    mumo = [r for r in rows if r["method"] == "MuMoMAML"]
    assert all(r["vs_maml_mean"] != "" for r in mumo)  # both scored on the same test goals: paired
    assert list(csv.DictReader((out / "figure3.csv").open()))[0]["iterations"] == "3"
    # a second command finds the best checkpoints scored and leaves them
    stamp = (out / "rl-navigation-maml" / "eval_best.json").stat().st_mtime_ns
    assert main(["reproduce", "figure3", "--out", str(out), "--iterations", "3", "--envs", "navigation",
                 "--checkpoint", "best", *TINY, *validated]) == 0
    assert (out / "rl-navigation-maml" / "eval_best.json").stat().st_mtime_ns == stamp
