"""``mmaml reproduce``: the table writer on short real runs, skip/resume logic, Figure 2."""

import csv
import json
import os

import pytest
import torch

from mmaml.cli.main import main
from mmaml.reproduction.runner import row_status
from mmaml.reproduction.table1 import Row, render_markdown
from mmaml.presets import resolve
from mmaml.engine.run_lock import RunLock
from mmaml.runs import make_trainer
from mmaml.engine.config import apply_overrides
from mmaml.engine.checkpoint import load_checkpoint

ARGS = ["--modes", "2", "--eval-tasks", "40", "--no-progress"]


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro")
    assert main(["reproduce", "table1", "--out", str(out), "--iterations", "3",
                 "--rows", "maml,multi-maml,film", *ARGS]) == 0
    return out


def test_table_written_from_short_real_runs(table_dir):
    rows = list(csv.DictReader((table_dir / "table1.csv").open()))
    assert [r["method"] for r in rows] == ["MAML", "Multi-MAML (GT)", "MuMoMAML FiLM"]
    for r in rows:
        assert r["modes"] == "2" and r["iterations"] == "3" and r["test_tasks"] == "40"
        assert float(r["post_adaptation_mean"]) > 0 and float(r["post_adaptation_ci95"]) > 0
        assert float(r["train_seconds"]) > 0
    assert rows[2]["paper_post_adaptation"] == "0.3125" and rows[0]["paper_post_modulation"] == "15.9255"
    assert (table_dir / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    md = (table_dir / "table1.md").read_text()
    assert "| 2 | MuMoMAML FiLM | 1.7094 |" in md
    assert "3 (of 70,000)" in md  # a short row is marked, never silently


def test_finished_rows_are_skipped(table_dir, capsys):
    ckpt = table_dir / "regression-2modes-film" / "checkpoint.pt"
    before = ckpt.stat().st_mtime_ns
    assert main(["reproduce", "table1", "--out", str(table_dir), "--iterations", "3", "--rows", "film", *ARGS]) == 0
    assert "done (3 iterations), skipped" in capsys.readouterr().out
    assert ckpt.stat().st_mtime_ns == before
    # a command for one row still tabulates every row evaluated in the folder
    rows = list(csv.DictReader((table_dir / "table1.csv").open()))
    assert [r["method"] for r in rows] == ["MAML", "Multi-MAML (GT)", "MuMoMAML FiLM"]


def test_row_trained_with_another_config_is_refused_not_skipped(table_dir, capsys):
    # the FiLM row was trained with the preset's inner learning rate; a command asking for another must not count it
    run = table_dir / "regression-2modes-film"
    ckpt, table = run / "checkpoint.pt", table_dir / "table1.csv"
    before = (ckpt.stat().st_mtime_ns, table.read_bytes())
    inner_lr = resolve("regression-2modes-film").inner_lr
    assert main(["reproduce", "table1", "--out", str(table_dir), "--iterations", "3", "--rows", "maml,film",
                 "--set", f"inner_lr={inner_lr * 2}", *ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "trained with another config" in err and "inner_lr" in err
    assert f"{inner_lr!r} there, {inner_lr * 2!r} asked" in err
    assert (ckpt.stat().st_mtime_ns, table.read_bytes()) == before  # nothing trained, evaluated or rewritten
    # the setting it was trained with is accepted: the row is done
    assert main(["reproduce", "table1", "--out", str(table_dir), "--iterations", "3", "--rows", "film",
                 "--set", f"inner_lr={inner_lr}", *ARGS]) == 0
    assert "done (3 iterations), skipped" in capsys.readouterr().out


@pytest.mark.parametrize("missing", ["eval.json", "eval_per_task.json"])
def test_evaluation_redone_when_missing(table_dir, capsys, missing):
    (table_dir / "regression-2modes-maml" / missing).unlink()
    assert main(["reproduce", "table1", "--out", str(table_dir), "--iterations", "3", "--rows", "maml", *ARGS]) == 0
    assert "evaluating" in capsys.readouterr().out
    assert (table_dir / "regression-2modes-maml" / missing).exists()


def test_interrupted_row_resumes_to_the_uninterrupted_result(tmp_path):
    preset = "regression-2modes-film"
    full, part = tmp_path / "full", tmp_path / "part"
    for d in (full, part):
        d.mkdir()
    config = apply_overrides(resolve(preset), {"iterations": 4}).validate()
    make_trainer(config, part / preset, progress=False, tensorboard=False).train(stop_after=2)  # the interruption
    assert row_status(part / preset, 40).iteration == 2
    for d in (full, part):
        assert main(["reproduce", "table1", "--out", str(d), "--iterations", "4", "--rows", "film", *ARGS]) == 0
    a = load_checkpoint(full / preset / "checkpoint.pt")
    b = load_checkpoint(part / preset / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    ea = json.loads((full / preset / "eval.json").read_text())
    eb = json.loads((part / preset / "eval.json").read_text())
    assert ea["post_adaptation_mse"] == eb["post_adaptation_mse"]


def test_figure2_from_the_table_runs(table_dir, tmp_path, capsys):
    figs = tmp_path / "figs"
    assert main(["reproduce", "figure2", "--out", str(table_dir), "--figures", str(figs)]) == 0
    assert {p.name for p in figs.iterdir()} == {
        "figure2a_modulated_prior.png", "figure2b_after_adaptation.png", "figure2c_tsne_2modes.png"}
    # the t-SNE of a short run says how far it was trained
    assert "(2 modes, MuMoMAML-FiLM trained 3 of 3 meta-iterations)" in capsys.readouterr().out


def test_figure2_without_runs_and_bad_rows_fail_cleanly(tmp_path, capsys):
    assert main(["reproduce", "figure2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs the trained 2-mode rows" in err and "\n" not in err
    assert not (tmp_path / "figures").exists()
    assert main(["reproduce", "table1", "--out", str(tmp_path / "t"), "--rows", "film,relu"]) == 2
    assert "unknown row" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_markdown_marks_rows_without_paper_numbers():
    md = render_markdown([{
        "modes": 5, "method": "MAML", "paper_post_modulation": None, "paper_post_adaptation": None,
        "post_modulation_mean": 1.0, "post_modulation_ci95": 0.1, "post_adaptation_mean": 0.5,
        "post_adaptation_ci95": 0.05, "test_tasks": 2000, "iterations": 70000, "train_seconds": 7200.0,
        "eval_seconds": 3.0}])
    assert "| 5 | MAML | — | 1.0000 ± 0.1000 | — | 0.5000 ± 0.0500 | 2000 | 70,000 | 2.00 h |" in md
    assert "of 70,000" not in md
    assert Row(3, "film").preset == "regression-3modes-film"


SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "omniglot" / "images_background.npz").exists(), reason="no Omniglot copy")
def test_reproduce_images_writes_its_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMAML_DATA", str(SHARED))
    monkeypatch.setenv("MMAML_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "images"
    assert main(["reproduce", "images", "--out", str(out), "--modes", "2", "--settings", "5w1s",
                 "--methods", "maml,mumomaml", "--iterations", "1", "--eval-tasks", "4", "--no-progress"]) == 0
    md = (out / "images.md").read_text()
    assert "| omniglot+tiny_imagenet | 5w1s | MAML | 66.80% |" in md
    assert "| omniglot+tiny_imagenet | 5w1s | MuMoMAML (FiLM) | 69.93% |" in md
    assert "CPU-scale rows use 28x28 images" in md
    records = json.loads((out / "images.json").read_text())
    assert [r["iterations"] for r in records] == [1, 1] and all(0 <= r["post_adaptation_accuracy"] <= 1 for r in records)
    # the same test tasks for both rows, so the paired difference is the difference of the means
    maml, mumomaml = records
    assert maml["vs_maml"] is None
    assert mumomaml["vs_maml"]["mean"] == pytest.approx(
        mumomaml["post_adaptation_accuracy"] - maml["post_adaptation_accuracy"], abs=1e-9)
    assert "points |" in md
    assert main(["reproduce", "images", "--out", str(out), "--methods", "relu"]) == 2


def test_threads_per_row_shares_the_cores_unless_told(monkeypatch):
    from mmaml.reproduction.runner import threads_per_row

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert threads_per_row(jobs=2, rows=5) == 4
    assert threads_per_row(jobs=4, rows=1) is None  # one row at a time: its own threads: auto decides
    assert threads_per_row(jobs=1, rows=3) is None
    assert threads_per_row(jobs=16, rows=16) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads_per_row(jobs=1, rows=3) == 1


def test_a_row_extended_after_its_evaluation_reports_the_evaluated_model():
    from mmaml.reproduction.runner import evaluated_progress

    state = {"iteration": 2750, "elapsed_seconds": 900.0}
    assert evaluated_progress({"iterations": 2750}, state) == {"iterations": 2750, "train_seconds": 900.0}
    # evaluated at 2,000, checkpoint since moved on: the time of the later model is not shown
    assert evaluated_progress({"iterations": 2000}, state) == {"iterations": 2000, "train_seconds": None}
    record = {"modes": 2, "method": "MAML", "paper_post_modulation": 1.0, "paper_post_adaptation": 1.0,
              "post_modulation_mean": 1.0, "post_modulation_ci95": 0.1, "post_adaptation_mean": 1.0,
              "post_adaptation_ci95": 0.1, "test_tasks": 10, "iterations": 2000, "train_seconds": None,
              "eval_seconds": 1.0}
    assert "| 2,000 (of 70,000) | — |" in render_markdown([record])


def test_a_row_another_process_is_training_is_left_to_it(tmp_path, capsys):
    preset = "regression-2modes-maml"
    with RunLock(tmp_path / preset):
        assert main(["reproduce", "table1", "--out", str(tmp_path), "--iterations", "2", "--rows", "maml",
                     *ARGS]) == 0
    assert f"{preset}: being trained by another process (pid {os.getpid()}); skipped" in capsys.readouterr().out
    assert not (tmp_path / preset / "checkpoint.pt").exists()


def test_a_row_taken_by_another_process_after_planning_is_left_to_it(tmp_path):
    from mmaml.reproduction.runner import run_rows

    rows = [Row(2, "maml"), Row(2, "film")]
    taken = RunLock(tmp_path / rows[1].preset)
    said = []

    def say(line):
        said.append(line)
        if line.startswith(f"{rows[1].preset}: training"):  # planned; now another command takes it
            taken.acquire()

    try:
        run_rows(tmp_path, rows, iterations=2, eval_tasks=20, jobs=1, progress=False, say=say)
    finally:
        taken.release()
    assert any(line.startswith(f"{rows[1].preset}: being trained by another process") for line in said)
    assert (tmp_path / rows[0].preset / "eval.json").exists()
    assert not (tmp_path / rows[1].preset / "checkpoint.pt").exists()


def test_terminating_reproduce_stops_the_rows_it_started(tmp_path):
    """`kill PID` on `reproduce` stops its training processes too, each the way Ctrl-C would."""
    import signal
    import subprocess
    import sys
    import time

    from mmaml.engine.run_lock import lock_holder

    run_dir = tmp_path / "regression-2modes-film"
    parent = subprocess.Popen(
        [sys.executable, "-m", "mmaml", "reproduce", "table1", "--out", str(tmp_path), "--rows", "film",
         "--iterations", "1000000", "--jobs", "2", *ARGS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        child = None
        while not child and time.time() < deadline and parent.poll() is None:
            child = lock_holder(run_dir)  # the training process, once it holds the run folder
            time.sleep(0.2)
        assert child, "the row never started training"
        parent.send_signal(signal.SIGTERM)
        _, err = parent.communicate(timeout=120)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 130 and "interrupted" in err
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert lock_holder(run_dir) is None
    # the row stopped on its own signal handler (not killed), telling how to resume
    assert "interrupted; the checkpoint holds iteration" in (run_dir / "train.log").read_text()


def test_learning_curves_use_a_running_median_that_ignores_single_spikes():
    from mmaml.plotting.curves import running_median

    losses = [1.0, 0.9, 1e12, 0.8, 0.7, 0.6]
    smoothed = running_median(losses, 3)
    assert smoothed[:2] == [1.0, 0.95]       # fewer values at the start
    assert max(smoothed) <= 1.0              # the one diverged meta-batch does not show
    assert smoothed[-1] == 0.7
    assert running_median(losses, 1) == losses
    with pytest.raises(ValueError):
        running_median(losses, 0)


def test_seeds_train_one_run_per_seed_and_tabulate_the_spread(tmp_path, capsys):
    out = tmp_path / "seeds"
    args = ["reproduce", "table1", "--out", str(out), "--rows", "maml", "--modes", "2", "--iterations", "3",
            "--seeds", "0,1", "--eval-tasks", "40", "--no-progress"]
    assert main(args) == 0
    rows = list(csv.DictReader((out / "table1.csv").open()))
    assert [(r["method"], r["seed"]) for r in rows] == [("MAML", "0"), ("MAML", "1")]
    for seed in (0, 1):
        assert load_checkpoint(out / f"regression-2modes-maml-seed{seed}" / "checkpoint.pt")["config"]["seed"] == seed
    values = [float(r["post_adaptation_mean"]) for r in rows]
    assert values[0] != values[1]  # different seeds, different runs (the same test tasks)
    md = (out / "table1.md").read_text()
    mean, std = sum(values) / 2, abs(values[0] - values[1]) / 2 ** 0.5
    assert f"| 2 | MAML | 0, 1 | {values[0]:.4f}, {values[1]:.4f} | {mean:.4f} | {std:.4f} |" in md
    assert md.count("| 2 | MAML, seed 0 |") == 1 and md.count("| 2 | MAML, seed 1 |") == 1  # each run says its seed
    capsys.readouterr()
    # finished seeds are skipped; a later command without --seeds keeps them in the table
    assert main(args) == 0
    assert "regression-2modes-maml-seed1: done (3 iterations), skipped" in capsys.readouterr().out
    assert main(["reproduce", "table1", "--out", str(out), "--rows", "maml", "--modes", "2", "--iterations", "3",
                 "--eval-tasks", "40", "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "table1.csv").open()))
    assert [(r["method"], r["seed"]) for r in rows] == [("MAML", ""), ("MAML", "0"), ("MAML", "1")]


def test_seeds_must_not_include_the_evaluation_seed(tmp_path, capsys):
    assert main(["reproduce", "table1", "--out", str(tmp_path / "x"), "--seeds", "0,20190601"]) == 2
    assert "evaluation seed" in capsys.readouterr().err
