"""One run over two CPU processes (torchrun, gloo on the loopback): the same losses and weights as one process,
resuming across layouts, and the error paths."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mmaml.engine.checkpoint import load_checkpoint
from mmaml.engine.metrics_log import read_metrics

SMALL = ["--set", "task_rng=per_iteration", "--set", "meta_batch_size=10", "--set", "log_every=1",
         "--set", "hidden_sizes=[32,32]", "--no-progress", "--no-tensorboard"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(*args: str, nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "mmaml", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)


def why(r: subprocess.CompletedProcess) -> str:
    """A failed launch's stderr for the assertion: the ranks' own messages come first and torchrun's summary
    last, so both ends (a rank that aborts prints its reason long before the summary)."""
    return r.stderr if len(r.stderr) <= 4000 else f"{r.stderr[:2500]}\n[...]\n{r.stderr[-1500:]}"


def single(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmaml", *args], capture_output=True, text=True, timeout=300,
                          env=ENV)


def assert_same_run(a: Path, b: Path, ignore=lambda name: False) -> None:
    la, lb = read_metrics(a), read_metrics(b)
    assert [r["iteration"] for r in la] == [r["iteration"] for r in lb]
    for ra, rb in zip(la, lb):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-5, abs=1e-6)
    wa, wb = load_checkpoint(a / "checkpoint.pt")["model"], load_checkpoint(b / "checkpoint.pt")["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        if not ignore(k):
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-6)


def test_two_processes_train_the_run_one_process_trains(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    r = torchrun("train", "regression-2modes-film", "--out", str(two), "--iterations", "4", *SMALL)
    assert r.returncode == 0, why(r)
    assert r.stdout.count("trained 4 iterations") == 1  # rank 0 alone reports
    assert single("train", "regression-2modes-film", "--out", str(one), "--iterations", "4", *SMALL).returncode == 0
    assert_same_run(two, one)


def test_resume_across_layouts(tmp_path):
    """Two processes, then one; and one, then two: both end where four uninterrupted iterations in one process do."""
    ref, a, b = tmp_path / "ref", tmp_path / "a", tmp_path / "b"
    assert single("train", "regression-2modes-maml", "--out", str(ref), "--iterations", "4", *SMALL).returncode == 0
    assert torchrun("train", "regression-2modes-maml", "--out", str(a), "--iterations", "2", *SMALL).returncode == 0
    assert single("train", "regression-2modes-maml", "--out", str(a), "--iterations", "4", "--resume",
                  *SMALL).returncode == 0
    assert single("train", "regression-2modes-maml", "--out", str(b), "--iterations", "2", *SMALL).returncode == 0
    r = torchrun("train", "regression-2modes-maml", "--out", str(b), "--iterations", "4", "--resume", *SMALL)
    assert r.returncode == 0, why(r)
    assert_same_run(a, ref)
    assert_same_run(b, ref)


@pytest.mark.parametrize("preset, extra, needle", [
    ("regression-3modes-maml", ["--set", "meta_batch_size=9"], "does not divide among 2 processes"),
    ("regression-2modes-maml", ["--set", "task_rng=stream"], "task_rng=per_iteration"),
])
def test_layout_errors_are_one_line_and_write_nothing(tmp_path, preset, extra, needle):
    out = tmp_path / "run"
    small = SMALL if preset.startswith("regression") else ["--no-progress", "--no-tensorboard"]
    r = torchrun("train", preset, "--out", str(out), "--iterations", "2", *small, *extra)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("mmaml: error:")]
    assert errors and all(needle in e for e in errors), why(r)
    assert not (out / "checkpoint.pt").exists()


def test_ranks_given_different_configs_refuse_to_train(tmp_path):
    out = tmp_path / "run"
    script = (f"exec {sys.executable} -m mmaml train regression-2modes-maml --out {out} --iterations 2 "
              + " ".join(a if a.startswith("--") else f"'{a}'" for a in SMALL) + " --set meta_lr=0.00$((RANK + 1))")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--no-python",
           "sh", "-c", script]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert r.returncode != 0
    assert "were given different configs" in r.stderr
    assert not (out / "checkpoint.pt").exists()


def test_a_rank_that_dies_stops_the_run_and_keeps_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "mmaml",
           "train", "regression-2modes-maml", "--out", str(out), "--iterations", "100000",
           "--set", "checkpoint_every=1", *SMALL]
    launcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint.pt").exists() and time.time() < deadline:
            time.sleep(0.2)
        assert (out / "checkpoint.pt").exists(), "the run never saved a checkpoint"
        rank1 = None
        for pid in subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split():
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if b"RANK=1" in env:
                rank1 = int(pid)
        assert rank1 is not None
        os.kill(rank1, signal.SIGKILL)
        _, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    state = load_checkpoint(out / "checkpoint.pt")  # intact, and loadable
    assert state["iteration"] >= 1


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not ((SHARED / "omniglot" / "images_background.npz").exists()
                         and (SHARED / "tiny-imagenet-200").exists()),
                    reason=f"Omniglot and Tiny ImageNet copies not found in {SHARED}")
def test_an_image_preset_on_two_processes_matches_one(tmp_path):
    image = ["--set", "task_rng=per_iteration", "--set", "images_per_class=20", "--set", "channels=[8,8,8,8]",
             "--set", "log_every=1", "--no-progress", "--no-tensorboard"]
    env_keys = {"MMAML_DATA": str(SHARED), "MMAML_CACHE": str(tmp_path / "cache")}
    ENV.update(env_keys)
    try:
        two, one = tmp_path / "two", tmp_path / "one"
        r = torchrun("train", "classification-cpu-2modes-mumomaml-5w1s", "--out", str(two), "--iterations", "2", *image)
        assert r.returncode == 0, why(r)
        assert single("train", "classification-cpu-2modes-mumomaml-5w1s", "--out", str(one), "--iterations", "2",
                      *image).returncode == 0
        # a conv bias right before batch norm has no effect on the loss: its gradient is float noise, which Adam
        # turns into lr-sized steps either way, so those biases are not compared
        assert_same_run(two, one, ignore=lambda name: name.endswith("bias") and "conv" in name)
    finally:
        for k in env_keys:
            ENV.pop(k, None)


def test_eval_over_two_processes_scores_exactly_what_one_does(tmp_path):
    import json

    run = tmp_path / "run"
    assert single("train", "regression-2modes-film", "--out", str(run), "--iterations", "2", *SMALL).returncode == 0
    assert single("eval", str(run), "--tasks", "600", "--output", str(tmp_path / "one.json")).returncode == 0
    r = torchrun("eval", str(run), "--tasks", "600", "--output", str(tmp_path / "two.json"))
    assert r.returncode == 0, why(r)
    assert r.stdout.count("wrote") == 1  # rank 0 alone writes and reports
    one, two = (json.loads((tmp_path / f"{n}_per_task.json").read_text()) for n in ("one", "two"))
    assert one == two  # per task, in task order (chunks of 250 scored by alternating ranks)
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    a.pop("seconds"), b.pop("seconds")
    assert a == b


def test_meta_rl_on_two_processes_takes_the_single_process_step(tmp_path):
    """Each rank samples and adapts its tasks (each task's episodes from its own generator), and the TRPO
    step averages the gradient, every Fisher-vector product and the line search's statistics. TRPO's
    conjugate gradient magnifies float differences (one process on 1 or 2 threads drifts apart by about
    1e-2 in 3 iterations; one step on the same rollouts, on 1 or 2 threads, ends up to 1.3e-2 apart in some
    weight, of a step of 0.15, with a KL 1.4% apart), so the comparison is of one iteration, within that
    noise; a wrongly weighted average (of the gradient or the Fisher) moves the step by far more."""
    rl = ["--set", "task_rng=per_iteration", "--set", "meta_batch_size=8", "--set", "episodes_per_task=4",
          "--set", "hidden_sizes=[16]", "--set", "log_every=1", "--set", "outer_optimizer=trpo",
          "--set", "prior_return_weight=0", "--iterations", "1",
          "--no-progress",
          "--no-tensorboard"]
    two, one = tmp_path / "two", tmp_path / "one"
    r = torchrun("train", "rl-navigation-mumomaml", "--out", str(two), *rl)
    assert r.returncode == 0, why(r)
    assert single("train", "rl-navigation-mumomaml", "--out", str(one), *rl).returncode == 0
    ma, mb = read_metrics(two)[0], read_metrics(one)[0]
    for key in ("return_step0", "return_step1", "backtracks"):  # sampled before the step: the same episodes
        assert ma[key] == pytest.approx(mb[key], rel=1e-5, abs=1e-6), key
    assert ma["kl"] == pytest.approx(mb["kl"], rel=2e-2)  # of the step taken
    wa, wb = load_checkpoint(two / "checkpoint.pt")["model"], load_checkpoint(one / "checkpoint.pt")["model"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=2e-2)
    # meta-RL evaluation of a per_iteration run under torchrun: the ranks share the chunks of test tasks
    # (each task's episodes from its own generator) and score what one process does, to float tolerance
    import json

    evaluate = ("eval", str(one), "--tasks", "32")  # four chunks of meta_batch_size 8, two per rank
    assert single(*evaluate, "--output", str(tmp_path / "a.json")).returncode == 0
    r = torchrun(*evaluate, "--output", str(tmp_path / "b.json"))
    assert r.returncode == 0, why(r)
    assert r.stdout.count("wrote") == 1  # rank 0 alone writes and reports
    a, b = (json.loads((tmp_path / f"{n}_per_task.json").read_text()) for n in "ab")
    assert a["mode"] == b["mode"]
    torch.testing.assert_close(torch.tensor(a["returns_by_step"]), torch.tensor(b["returns_by_step"]),
                               rtol=1e-4, atol=1e-3)
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["mode_identification"]["knn_accuracy"] == pytest.approx(b["mode_identification"]["knn_accuracy"])
    assert a["reference_returns"] == b["reference_returns"]


def test_meta_rl_eval_of_a_stream_run_stays_on_rank_0(tmp_path):
    """A task_rng=stream run's test episodes come from one stream: under torchrun rank 0 scores every
    task itself, bit for bit what one process does."""
    import json

    run = tmp_path / "run"
    assert single("train", "rl-navigation-maml", "--out", str(run), "--iterations", "1", "--set", "meta_batch_size=4",
                  "--set", "episodes_per_task=2", "--set", "hidden_sizes=[8]", "--no-progress",
                  "--no-tensorboard").returncode == 0
    assert single("eval", str(run), "--tasks", "8", "--output", str(tmp_path / "a.json")).returncode == 0
    r = torchrun("eval", str(run), "--tasks", "8", "--output", str(tmp_path / "b.json"))
    assert r.returncode == 0, why(r)
    assert r.stdout.count("wrote") == 1
    a, b = (json.loads((tmp_path / f"{n}_per_task.json").read_text()) for n in "ab")
    assert a == b


def test_each_rank_takes_its_local_gpu_and_a_share_of_the_cores(monkeypatch):
    """Placement without a GPU machine: ``LOCAL_RANK`` picks the GPU when CUDA is there and the config
    allows it; on CPUs the local ranks split the cores unless OMP_NUM_THREADS is set."""
    from mmaml.engine.distributed import Distributed

    rank = Distributed(rank=3, world=4, local_rank=1, local_world=2, backend="nccl")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert rank.device("auto") == "cuda:1" and rank.device("cuda") == "cuda:1"
    assert rank.device("cpu") == "cpu"  # a config that asks for the CPU keeps it
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert rank.device("auto") == "auto"  # resolved to the CPU later
    assert Distributed().device("auto") == "auto"  # a single process is left alone
    from mmaml.engine.threads import FAMILY_THREADS, resolve_threads

    monkeypatch.setitem(FAMILY_THREADS, "regression", None)  # a family whose default is every core
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_threads("auto", "regression", cpus=16, local_world=rank.local_world)[0] == 8
    assert resolve_threads("auto", "regression", cpus=16, local_world=1)[0] == 16
    monkeypatch.setitem(FAMILY_THREADS, "regression", 1)
    assert resolve_threads("auto", "regression", cpus=16, local_world=rank.local_world)[0] == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads("auto", "regression", cpus=16, local_world=rank.local_world)[0] == 3  # the user's wins


@pytest.mark.parametrize("outer,prior", [("ppo", 0), ("promp", 0), ("promp", 0.5)])
def test_meta_rl_ppo_on_two_processes_takes_the_single_process_steps(tmp_path, outer, prior):
    """The PPO (and ProMP) outer loop averages each epoch's gradient over the ranks: two iterations of Adam
    epochs on two processes end at one process's weights (to float tolerance), with the prior's term too."""
    rl = ["--set", "task_rng=per_iteration", "--set", "meta_batch_size=4", "--set", "episodes_per_task=3",
          "--set", "hidden_sizes=[16]", "--set", f"outer_optimizer={outer}", "--set", "ppo_epochs=2",
          "--set", f"prior_return_weight={prior}",
          "--iterations", "2", "--no-progress", "--no-tensorboard"]
    two, one = tmp_path / "two", tmp_path / "one"
    r = torchrun("train", "rl-navigation-mumomaml", "--out", str(two), *rl)
    assert r.returncode == 0, why(r)
    assert single("train", "rl-navigation-mumomaml", "--out", str(one), *rl).returncode == 0
    for ra, rb in zip(read_metrics(two), read_metrics(one)):
        assert ra["return_step1"] == pytest.approx(rb["return_step1"], rel=1e-4, abs=1e-4)
    wa, wb = load_checkpoint(two / "checkpoint.pt")["model"], load_checkpoint(one / "checkpoint.pt")["model"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-4)
