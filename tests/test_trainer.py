"""Training: resume continues the same run, checkpoints are atomic, short training learns."""

import os
import subprocess
import sys

import pytest
import torch

from mmaml.errors import CheckpointError, ConfigError
from mmaml.kinds import build_tasks
from mmaml.engine.checkpoint import atomic_write_bytes
from mmaml.engine.config import apply_overrides
from mmaml.supervised.evaluation import evaluate
from mmaml.engine.metrics_log import read_metrics
from mmaml.presets import resolve
from mmaml.engine.run_lock import RunLock, lock_holder
from mmaml.runs import make_trainer
from mmaml.engine.checkpoint import load_checkpoint

SMALL = {"hidden_sizes": [16, 16], "meta_batch_size": 6, "encoder_hidden": 8, "log_every": 1,
         "checkpoint_every": 3, "iterations": 8}


def config(preset="regression-2modes-film", **kw):
    return apply_overrides(resolve(preset), {**SMALL, **kw}).validate()


@pytest.mark.parametrize("preset", ["regression-2modes-film", "regression-3modes-multi-maml"])
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, preset):
    full = make_trainer(config(preset), tmp_path / "full", progress=False, tensorboard=False)
    full.train()
    part = make_trainer(config(preset), tmp_path / "part", progress=False, tensorboard=False)
    part.train(stop_after=5)  # "interrupted": last checkpoint at iteration 3, metrics logged up to 5
    torch.manual_seed(1234)  # a fresh process would not share the global RNG state
    resumed = make_trainer(config(preset), tmp_path / "part", resume=True, progress=False, tensorboard=False)
    assert resumed.iteration == 5
    resumed.train()
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    losses = lambda d: [(r["iteration"], r["loss"]) for r in read_metrics(d)]  # noqa: E731
    assert losses(tmp_path / "full") == losses(tmp_path / "part")


def test_resume_from_last_checkpoint_drops_later_metric_rows(tmp_path):
    t = make_trainer(config(checkpoint_every=4), tmp_path / "r", progress=False, tensorboard=False)
    t.train(stop_after=6)  # checkpoint at 4 and (stop) 6
    ckpt = (tmp_path / "r" / "checkpoint.pt")
    state = load_checkpoint(ckpt)
    assert state["iteration"] == 6
    # simulate a crash after iteration 6 had been logged but with the checkpoint still at 4
    t4 = make_trainer(config(checkpoint_every=4), tmp_path / "r4", progress=False, tensorboard=False)
    t4.train(stop_after=4)
    with (tmp_path / "r4" / "metrics.csv").open("a") as f:
        f.write("5,9.9,1,0.1,1\n6,9.9,1,0.1,1\n")
    resumed = make_trainer(config(checkpoint_every=4), tmp_path / "r4", resume=True, progress=False, tensorboard=False)
    resumed.train()
    its = [r["iteration"] for r in read_metrics(tmp_path / "r4")]
    assert its == list(range(1, 9))
    assert 9.9 not in [r["loss"] for r in read_metrics(tmp_path / "r4")]


def test_resume_refuses_a_changed_config(tmp_path):
    make_trainer(config(), tmp_path / "r", progress=False, tensorboard=False).train(stop_after=3)
    with pytest.raises(ConfigError, match="inner_lr"):
        make_trainer(config(inner_lr=0.5), tmp_path / "r", resume=True, progress=False, tensorboard=False)
    make_trainer(config(iterations=12), tmp_path / "r", resume=True, progress=False, tensorboard=False)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")

    def broken(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_bytes(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_short_mumomaml_training_modulates_far_better_than_maml(tmp_path):
    """End to end on the 2-mode task: MuMoMAML's post-modulation MSE falls far below MAML's."""
    results = {}
    for preset in ("regression-2modes-maml", "regression-2modes-film"):
        c = apply_overrides(resolve(preset), {"iterations": 200, "meta_batch_size": 20, "seed": 1}).validate()
        t = make_trainer(c, tmp_path / preset, progress=False, tensorboard=False)
        t.train()
        results[preset] = evaluate(t.model, build_tasks(c), num_tasks=400, seed=5, steps=5)
    maml = results["regression-2modes-maml"]["post_modulation_mse"]["mean"]
    film = results["regression-2modes-film"]["post_modulation_mse"]["mean"]
    assert film < 0.6 * maml, (film, maml)
    # and the modulated prior already fits the linear mode far better than MAML's shared prior
    per_mode = lambda r: r["per_mode"]["linear"]["post_modulation_mse"]["mean"]  # noqa: E731
    assert per_mode(results["regression-2modes-film"]) < 0.5 * per_mode(results["regression-2modes-maml"])


def test_a_non_finite_meta_batch_is_skipped_and_counted(tmp_path):
    t = make_trainer(config(method="maml", iterations=4, checkpoint_every=4), tmp_path / "r", progress=False,
                tensorboard=False)
    sample = t.tasks.sample
    calls = []

    def poisoned(n, generator):
        batch = sample(n, generator)
        calls.append(1)
        if len(calls) == 2:  # the second meta-batch has an infinite target
            batch.query_y[0, 0, 0] = float("inf")
        return batch

    t.tasks.sample = poisoned
    t.train()
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    rows = read_metrics(tmp_path / "r")
    assert [r["skipped_steps"] for r in rows] == [0, 1, 0, 0]
    assert all(r["loss"] == r["loss"] for r in rows if r["skipped_steps"] == 0)


def test_a_run_folder_is_trained_by_one_process_at_a_time(tmp_path):
    run = tmp_path / "r"
    make_trainer(config(), run, progress=False, tensorboard=False).train(stop_after=3)
    assert lock_holder(run) is None  # released when training ends
    with RunLock(run):  # stands for another process training the run now
        assert lock_holder(run) == os.getpid()
        with pytest.raises(CheckpointError, match=rf"being trained by another process \(pid {os.getpid()}\)"):
            make_trainer(config(), run, resume=True, progress=False, tensorboard=False)
    before = (run / "checkpoint.pt").read_bytes()
    # a trainer that loaded the run, then finds the folder taken when it starts, writes nothing
    waiting = make_trainer(config(), run, resume=True, progress=False, tensorboard=False)
    with RunLock(run):
        with pytest.raises(CheckpointError, match="being trained by another process"):
            waiting.train()
    assert (run / "checkpoint.pt").read_bytes() == before
    waiting.train(stop_after=1)
    assert waiting.iteration == 4
    assert not (run / ".train.lock").exists()  # a run that ended normally leaves no lock file


def test_a_lock_taken_on_a_file_its_holder_removed_is_taken_again_on_the_new_file(tmp_path, monkeypatch):
    """The race of removing a lock file: this process opens the file, its holder removes it and lets go, and
    this process's flock then succeeds on the removed file. It must notice and lock the path's new file, or a
    third process creating that file would train the run beside it."""
    from mmaml.engine import run_lock

    run = tmp_path / "r"
    run.mkdir()
    (run / run_lock.LOCK_NAME).write_text("")
    real_flock = run_lock.fcntl.flock
    calls = []

    def flock_after_the_holder_left(fd, op):
        calls.append(fd)
        if len(calls) == 1:
            os.unlink(run / run_lock.LOCK_NAME)  # the holder removed the file between our open and our flock
        return real_flock(fd, op)

    monkeypatch.setattr(run_lock.fcntl, "flock", flock_after_the_holder_left)
    lock = RunLock(run).acquire()
    monkeypatch.setattr(run_lock.fcntl, "flock", real_flock)
    assert len(calls) == 2  # locked the removed file, noticed, locked the path's new file
    assert lock_holder(run) == os.getpid()  # the lock is on the file at the path
    with pytest.raises(CheckpointError, match="being trained by another process"):
        RunLock(run).acquire()
    lock.release()
    assert lock_holder(run) is None and not (run / run_lock.LOCK_NAME).exists()


def test_a_trainer_refuses_a_checkpoint_that_changed_after_it_loaded(tmp_path):
    run = tmp_path / "r"
    make_trainer(config(), run, progress=False, tensorboard=False).train(stop_after=3)
    stale = make_trainer(config(), run, resume=True, progress=False, tensorboard=False)
    make_trainer(config(), run, resume=True, progress=False, tensorboard=False).train(stop_after=3)  # meanwhile
    newer = (run / "checkpoint.pt").read_bytes()
    with pytest.raises(CheckpointError, match="changed after this run was loaded"):
        stale.train()
    assert (run / "checkpoint.pt").read_bytes() == newer
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 6


def test_the_lock_of_a_killed_trainer_does_not_outlive_it(tmp_path):
    run = tmp_path / "r"
    code = ("import sys, time; from mmaml.engine.run_lock import RunLock; "
            f"lock = RunLock({str(run)!r}).acquire(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert lock_holder(run) == proc.pid
    finally:
        proc.kill()
        proc.wait()
    assert lock_holder(run) is None
    make_trainer(config(), run, progress=False, tensorboard=False).train(stop_after=1)


def test_a_diverging_run_stops_keeps_its_last_checkpoint_and_says_so(tmp_path, capsys):
    from mmaml.cli.main import main

    run = tmp_path / "r"
    code = main(["train", "regression-2modes-maml", "--out", str(run), "--iterations", "40", "--no-progress",
                 "--no-tensorboard", "--set", "meta_lr=1e6", "--set", "hidden_sizes=[16,16]",
                 "--set", "meta_batch_size=4", "--set", "checkpoint_every=2", "--set", "log_every=1",
                 "--set", "max_nonfinite_steps=3"])
    err = capsys.readouterr().err.strip()
    assert code == 3
    assert len(err.splitlines()) == 1 and "diverged at iteration" in err
    stopped = int(err.split("diverged at iteration ")[1].split(":")[0])
    assert stopped < 40
    rows = read_metrics(run)
    assert rows[-1]["iteration"] == stopped  # the log goes as far as the message says
    assert sum(r["skipped_steps"] for r in rows[-3:]) == 3
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["iteration"] <= stopped - 3 + 1  # saved before the non-finite streak, not after
    assert f"iteration {state['iteration']} is kept" in err
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def _trained(tmp_path, name="r"):
    run = tmp_path / name
    make_trainer(config(iterations=2, checkpoint_every=2), run, progress=False, tensorboard=False).train()
    return run


def test_a_corrupted_or_truncated_checkpoint_is_refused_by_name(tmp_path):
    from mmaml.cli.main import main

    run = _trained(tmp_path)
    ckpt = run / "checkpoint.pt"
    good = ckpt.read_bytes()
    middle = len(good) // 2
    flipped = good[:middle] + bytes(b ^ 0xFF for b in good[middle:middle + 64]) + good[middle + 64:]
    for damaged, why in ((flipped, "corrupt"), (good[:-100], "truncated")):
        ckpt.write_bytes(damaged)
        with pytest.raises(CheckpointError, match=why) as err:
            load_checkpoint(ckpt)
        assert str(ckpt) in str(err.value)
        assert main(["eval", str(run), "--tasks", "4"]) == 2
        assert not (run / "eval.json").exists()
    ckpt.write_bytes(good)
    assert load_checkpoint(ckpt)["iteration"] == 2


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    from mmaml.runs import load_run

    film = _trained(tmp_path, "film")
    other = tmp_path / "maml"
    make_trainer(config(method="maml", iterations=2, checkpoint_every=2), other, progress=False, tensorboard=False).train()
    (film / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    with pytest.raises(CheckpointError, match="disagree on method.*comes from another run"):
        load_run(film)


def test_version_1_checkpoints_still_load(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": "mmaml-checkpoint", "version": 1, "iteration": 7}, path)
    assert load_checkpoint(path)["iteration"] == 7


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    import errno

    import mmaml.engine.checkpoint as checkpoint
    from mmaml.cli.main import main

    run = tmp_path / "r"
    args = ["train", "regression-2modes-maml", "--out", str(run), "--no-progress", "--no-tensorboard",
            "--set", "hidden_sizes=[8]", "--set", "meta_batch_size=2", "--set", "checkpoint_every=2"]
    assert main([*args, "--iterations", "2"]) == 0
    before = (run / "checkpoint.pt").read_bytes()
    real_fsync = checkpoint.os.fsync
    calls = []

    def full_disk(fd):  # only the checkpoint's temporary file hits the full disk
        if ".checkpoint.pt." not in os.readlink(f"/proc/self/fd/{fd}"):
            return real_fsync(fd)
        calls.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full_disk)
    capsys.readouterr()
    assert main([*args, "--iterations", "6", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(calls) == 1 and len(err.splitlines()) == 1 and "no space left" in err
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 2
    assert (run / "checkpoint.pt").read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(checkpoint.os, "fsync", real_fsync)
    assert main([*args, "--iterations", "6", "--resume"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 6


@pytest.mark.parametrize("groups", ["per_group", "joint"])
def test_meta_gradient_clipping_per_group_or_joint(groups):
    """per_group: the learner's and the encoder + modulation network's meta-gradients are each clipped to the norm
    (the authors' code); joint: one norm over both."""
    from mmaml.engine.config import apply_overrides
    from mmaml.presets import resolve
    from mmaml.kinds import build_algorithm

    config = apply_overrides(resolve("regression-2modes-film"), {
        "meta_batch_size": 6, "grad_norm_clip": 1e-4, "grad_clip_groups": groups}).validate()
    torch.manual_seed(0)
    algorithm = build_algorithm(config, torch.device("cpu"), torch.Generator().manual_seed(0))
    seen = {}

    def record(*args, **kwargs):
        for i, group in enumerate(algorithm.model.parameter_groups()):
            seen[i] = float(torch.cat([p.grad.reshape(-1) for p in group if p.grad is not None]).norm())

    algorithm.optimizer.step = record
    row = algorithm.step()
    assert row["grad_norm"] > 1e-3  # far above the clip: clipping engaged
    if groups == "per_group":
        assert seen[0] == pytest.approx(1e-4, rel=1e-3) and seen[1] == pytest.approx(1e-4, rel=1e-3)
    else:
        assert (seen[0] ** 2 + seen[1] ** 2) ** 0.5 == pytest.approx(1e-4, rel=1e-3)
        assert seen[0] < 1e-4 and seen[1] < 1e-4


def test_runs_saved_before_the_clipping_key_read_as_joint(tmp_path):
    from mmaml.kinds import saved_config_from_dict
    from mmaml.presets import resolve

    preset = resolve("regression-2modes-film")
    assert preset.grad_clip_groups == "joint"  # the measured better choice (docs/notes/regression-variants.md)
    old = preset.to_dict()
    del old["grad_clip_groups"]
    assert saved_config_from_dict(old).grad_clip_groups == "joint"
    assert saved_config_from_dict({**old, "grad_clip_groups": "per_group"}).grad_clip_groups == "per_group"


def test_every_evaluation_holds_as_many_tasks_of_each_mode(monkeypatch):
    """1,000 tasks of 3 modes cannot split evenly: the evaluation takes 1,002 (334 each); image-sized chunks
    are multiples of the number of modes too, so no chunk leans to the first modes."""
    from mmaml.engine.statistics import balanced_count
    from mmaml.supervised.evaluation import per_task_scores

    assert balanced_count(1000, 3) == 1002 and balanced_count(20, 3) == 21 and balanced_count(40, 2) == 40
    config = apply_overrides(resolve("regression-3modes-maml"), {"meta_batch_size": 6}).validate()
    torch.manual_seed(0)
    from mmaml.kinds import build_model

    model = build_model(config)
    tasks = build_tasks(config)
    result = evaluate(model, tasks, num_tasks=100, seed=3, steps=1)
    assert result["num_tasks"] == 102
    assert [m["num_tasks"] for m in result["per_mode"].values()] == [34, 34, 34]
    # chunk by chunk drawing (the image path, taken here with the accuracy metric): every chunk of 20 becomes 21,
    # a multiple of the modes, so each chunk's mode blocks are equal
    import mmaml.supervised.evaluation as evaluation

    monkeypatch.setattr(evaluation, "accuracy_per_task", lambda pred, y: torch.zeros(pred.shape[0]))
    _, _, mode = per_task_scores(model, tasks, 100, seed=3, steps=1, metric="accuracy", batch_size=20)
    assert torch.bincount(mode).tolist() == [34, 34, 34]
    assert all(torch.bincount(mode[i:i + 21], minlength=3).tolist() == [7, 7, 7] for i in range(0, 84, 21))
