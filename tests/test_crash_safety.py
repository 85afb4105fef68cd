"""Training killed with SIGKILL at random moments, then resumed, ends exactly where an uninterrupted run does.

Each trial starts `mmaml train` in a subprocess (one thread, a checkpoint after
every iteration so that many kills land during a checkpoint write), kills it
once it has logged a random number of iterations plus a random few
milliseconds, checks that whatever checkpoint is on disk loads as valid
(a checksummed file that loads is intact), and resumes to the end. The final
weights must equal those of an uninterrupted run bit for bit, and the metrics
must run 1..N without gaps or repeats.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from mmaml.engine.checkpoint import load_checkpoint
from mmaml.engine.metrics_log import read_metrics

ITERATIONS = 60
TRIALS = 20
ARGS = ["regression-2modes-film", "--no-progress", "--no-tensorboard", "--iterations", str(ITERATIONS),
        "--set", "hidden_sizes=[16,16]", "--set", "meta_batch_size=6", "--set", "encoder_hidden=8",
        "--set", "checkpoint_every=1", "--set", "log_every=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}


def _train(out: Path, resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mmaml", "train", *ARGS, "--out", str(out)] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _logged(out: Path) -> int:
    """Iterations logged so far (rows of metrics.csv)."""
    try:
        return max(0, len((out / "metrics.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


def _finish(out: Path) -> None:
    proc = _train(out, resume=(out / "checkpoint.pt").exists())
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    reference = tmp_path / "reference"
    _finish(reference)
    expected = load_checkpoint(reference / "checkpoint.pt")["model"]
    rng = random.Random(0)
    kills_with_checkpoint = 0
    for trial in range(TRIALS):
        out = tmp_path / f"trial{trial}"
        proc = _train(out, resume=False)
        target, extra = rng.randint(1, ITERATIONS - 1), rng.uniform(0.0, 0.03)
        deadline = time.monotonic() + 120
        while _logged(out) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(extra)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ckpt = out / "checkpoint.pt"
        if ckpt.exists():
            state = load_checkpoint(ckpt)  # whatever is on disk is a whole, valid checkpoint
            assert 1 <= state["iteration"] <= ITERATIONS
            kills_with_checkpoint += state["iteration"] < ITERATIONS
        _finish(out)
        final = load_checkpoint(ckpt)
        assert final["iteration"] == ITERATIONS
        for name, value in expected.items():
            assert torch.equal(final["model"][name], value), (trial, name)
        assert [int(r["iteration"]) for r in read_metrics(out)] == list(range(1, ITERATIONS + 1))
    assert kills_with_checkpoint >= TRIALS // 2  # most kills landed mid-training, not before or after it
