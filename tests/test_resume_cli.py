"""Resume from the command line: the run's own settings, printed overrides, refusals; Ctrl-C and SIGTERM
save the completed iteration; an edited config.yaml is refused, not overwritten."""

import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from mmaml.cli.main import main
from mmaml.engine.checkpoint import load_checkpoint
from mmaml.engine.metrics_log import read_metrics

SMALL = ["--no-progress", "--no-tensorboard", "--set", "hidden_sizes=[16,16]", "--set", "meta_batch_size=4"]


def test_resume_takes_the_runs_own_schedule_and_says_what_a_flag_overrides(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "regression-2modes-maml", "--out", run, "--iterations", "4", "--set", "checkpoint_every=2",
                 "--set", "log_every=2", *SMALL]) == 0
    capsys.readouterr()
    # the printed resume command (no flags) continues the very same run: 4 iterations, not the preset's 70,000
    assert main(["train", "regression-2modes-maml", "--out", run, "--resume", "--no-progress"]) == 0
    assert "already trained for 4 iterations; nothing to do" in capsys.readouterr().out
    assert main(["train", "regression-2modes-maml", "--out", run, "--resume", "--iterations", "6", "--no-progress",
                 "--no-tensorboard"]) == 0
    assert "resuming with iterations=6 (the run had 4)" in capsys.readouterr().out
    assert [int(r["iteration"]) for r in read_metrics(Path(run))] == [2, 4, 6]  # its log_every, not the preset's
    state = load_checkpoint(Path(run) / "checkpoint.pt")
    assert state["iteration"] == 6 and state["config"]["checkpoint_every"] == 2


def test_resume_refuses_a_flag_that_changes_the_computation_and_another_runs_preset(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "regression-2modes-maml", "--out", str(run), "--iterations", "2", *SMALL]) == 0
    before = (run / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "regression-2modes-maml", "--out", str(run), "--resume", "--set", "meta_lr=0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "cannot resume" in err and "meta_lr=0.5 (the run has 0.001)" in err
    assert main(["train", "regression-2modes-film", "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds another run than regression-2modes-film (method differ)" in err
    assert (run / "checkpoint.pt").read_bytes() == before


def test_an_edited_config_file_is_refused_by_resume_and_eval_naming_the_keys(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "regression-2modes-maml", "--out", str(run), "--iterations", "2", *SMALL]) == 0
    edited = (run / "config.yaml").read_text().replace("meta_lr: 0.001", "meta_lr: 0.01")
    assert edited != (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(edited)
    before = (run / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    for command in (["train", "regression-2modes-maml", "--out", str(run), "--resume", "--iterations", "3"],
                    ["eval", str(run), "--tasks", "4"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "disagree on meta_lr" in err and "config.yaml was edited" in err
    assert (run / "config.yaml").read_text() == edited and (run / "checkpoint.pt").read_bytes() == before
    assert not (run / "eval.json").exists()


ITERATIONS = 30
ARGS = ["regression-2modes-film", "--no-progress", "--no-tensorboard", "--iterations", str(ITERATIONS),
        "--set", "hidden_sizes=[16,16]", "--set", "meta_batch_size=6", "--set", "encoder_hidden=8",
        "--set", "checkpoint_every=1000", "--set", "log_every=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}


def _run(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mmaml", *args], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_an_interrupt_saves_the_completed_iteration_and_the_printed_command_finishes_the_run(tmp_path):
    """SIGINT or SIGTERM at random iterations, before any periodic checkpoint: the run saves the iteration it
    completed, exits 130, and the command it prints resumes to the weights of an uninterrupted run, bit for bit."""
    reference = tmp_path / "reference"
    proc = _run(["train", *ARGS, "--out", str(reference)])
    assert proc.wait(timeout=300) == 0
    expected = load_checkpoint(reference / "checkpoint.pt")["model"]
    rng = random.Random(1)
    for trial, sig in enumerate([signal.SIGINT, signal.SIGTERM, signal.SIGINT]):
        out = tmp_path / f"trial{trial}"
        proc = _run(["train", *ARGS, "--out", str(out)])
        target = rng.randint(2, ITERATIONS - 5)
        deadline = time.monotonic() + 120
        while len(read_metrics(out)) < target if (out / "metrics.csv").exists() else True:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        saved = load_checkpoint(out / "checkpoint.pt")
        assert target <= saved["iteration"] < ITERATIONS  # the completed iteration, not a periodic checkpoint
        assert saved["iteration"] == len(read_metrics(out))
        command = err.split("resume with: ")[1].strip()
        assert command.startswith("mmaml train regression-2modes-film") and command.endswith("--resume")
        resumed = _run(shlex.split(command)[1:])
        _, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err
        final = load_checkpoint(out / "checkpoint.pt")
        assert final["iteration"] == ITERATIONS
        for name, value in expected.items():
            assert torch.equal(final["model"][name], value), (trial, name)
