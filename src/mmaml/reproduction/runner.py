"""Train and evaluate a set of preset rows in one folder, resumably, several at a time.

Used by every ``mmaml reproduce`` table. Each row ``DIR/<preset>`` is handled by
its state:

- trained to the target and evaluated: skipped;
- trained to the target, not (or not fully) evaluated: only evaluated;
- interrupted (an earlier checkpoint): resumed from it, with the same data
  stream, optimizer and RNG state, so it ends as an uninterrupted run would;
- being trained by another process now (its folder is locked, see
  :mod:`mmaml.engine.run_lock`): left to that process;
- otherwise trained from scratch.

A row whose checkpoint was trained with another config than the command asks
for (its preset and ``--set`` values; e.g. the TRPO row in a folder now asked
for ``outer_optimizer=ppo``) is refused before anything runs, never skipped as
done or mixed into the table.

Each row trains in its own ``mmaml train`` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from mmaml.engine.checkpoint import load_checkpoint
from mmaml.engine.config import RunConfig, apply_overrides, config_differences, parse_assignment
from mmaml.engine.run_dir import checkpoint_path
from mmaml.engine.run_lock import lock_holder
from mmaml.errors import ConfigError
from mmaml.presets import resolve
from mmaml.runs import evaluate_run, saved_run_config


class PresetRow(Protocol):
    """Anything naming the preset a table row trains.

    A row may also have ``run_name`` (its folder, default: the preset) and
    ``overrides`` (``"key=value"`` strings for its ``mmaml train --set``, e.g. a seed).
    """

    @property
    def preset(self) -> str: ...


def run_name(row: PresetRow) -> str:
    """The row's folder name inside the table's folder."""
    return getattr(row, "run_name", row.preset)


def row_overrides(row: PresetRow) -> tuple[str, ...]:
    return tuple(getattr(row, "overrides", ()))


@dataclass
class RowStatus:
    iteration: int  # checkpoint iteration, 0 when untrained
    evaluated: bool  # eval.json matches the checkpoint and the requested number of tasks
    config: RunConfig | None = None  # the checkpoint's config, None when untrained


def row_status(run_dir: Path, eval_tasks: int) -> RowStatus:
    """How far the row in ``run_dir`` is: its checkpoint's iteration and config, and whether
    its evaluation (at least ``eval_tasks`` tasks, with per-task scores) is of that checkpoint."""
    ckpt = checkpoint_path(run_dir)
    if not ckpt.exists():
        return RowStatus(0, False)
    state = load_checkpoint(ckpt)
    iteration = int(state["iteration"])
    config = saved_run_config(state, ckpt)
    evaluated = False
    eval_path = run_dir / "eval.json"
    if eval_path.exists():
        try:
            result = json.loads(eval_path.read_text())
            evaluated = (result.get("iterations") == iteration and result.get("num_tasks", 0) >= eval_tasks
                         and (run_dir / "eval_per_task.json").exists())
        except (json.JSONDecodeError, AttributeError):
            evaluated = False
    return RowStatus(iteration, evaluated, config)


def row_config(row: PresetRow, overrides: Sequence[str] = ()) -> RunConfig:
    """The config ``mmaml train`` builds for ``row`` with the command's ``overrides`` and the row's own."""
    values = dict(parse_assignment(a) for a in (*overrides, *row_overrides(row)))
    return apply_overrides(resolve(row.preset), values)


def check_row_config(row: PresetRow, run_dir: Path, status: RowStatus, overrides: Sequence[str] = ()) -> None:
    """Refuse (``ConfigError``) overrides that make no valid config of ``row``, and a trained
    row whose checkpoint's config is not the one asked for."""
    wanted_config = row_config(row, overrides).validate()
    if status.config is None:
        return
    differs = config_differences(status.config, wanted_config)
    if differs:
        wanted, saved = wanted_config.to_dict(), status.config.to_dict()
        shown = "; ".join(f"{k}: {saved.get(k)!r} there, {wanted.get(k)!r} asked" for k in differs[:4])
        more = f" and {len(differs) - 4} more" if len(differs) > 4 else ""
        raise ConfigError(f"{run_dir} was trained with another config ({shown}{more}); give the --set it was "
                          f"trained with, or another --out for the new setting")


def _train_command(row, run_dir: Path, iterations: int, resume: bool, progress: bool,
                   overrides: Sequence[str] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "mmaml", "train", row.preset, "--out", str(run_dir), "--iterations", str(iterations)]
    for assignment in (*overrides, *row_overrides(row)):
        cmd += ["--set", assignment]
    if resume:
        cmd.append("--resume")
    if not progress:
        cmd.append("--no-progress")
    return cmd


def threads_per_row(jobs: int, rows: int) -> int | None:
    """Threads for each concurrently trained row: ``$OMP_NUM_THREADS`` when set
    (e.g. to leave cores for other work), else the machine's cores shared among the
    rows that train at once; None when one row trains at a time (its own ``threads: auto``
    decides, see :mod:`mmaml.engine.threads`)."""
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    concurrent = max(1, min(jobs, rows or 1))
    return None if concurrent == 1 else max(1, (os.cpu_count() or 1) // concurrent)


def _taken_elsewhere(row: PresetRow, run_dir: Path, say: Callable[[str], None]) -> bool:
    """Whether another process trains ``run_dir`` now (said, and then the row is left to it)."""
    pid = lock_holder(run_dir)
    if pid is None:
        return False
    say(f"{run_name(row)}: being trained by another process{f' (pid {pid})' if pid else ''}; skipped")
    return True


def check_rows_config(out: Path, rows: Sequence[PresetRow], eval_tasks: int,
                      overrides: Sequence[str] = ()) -> dict[str, RowStatus]:
    """Every row's status in ``out``, after checking its config (see :func:`check_row_config`);
    rows being trained by another process count as untrained here."""
    statuses = {}
    for row in rows:
        run_dir = Path(out) / run_name(row)
        status = row_status(run_dir, eval_tasks) if lock_holder(run_dir) is None else RowStatus(0, False)
        check_row_config(row, run_dir, status, overrides)
        statuses[run_name(row)] = status
    return statuses


def run_rows(
    out: Path,
    rows: Sequence[PresetRow],
    iterations: int | None,
    eval_tasks: int,
    jobs: int = 1,
    progress: bool = True,
    say: Callable[[str], None] = print,
    overrides: Sequence[str] = (),
    statuses: dict[str, RowStatus] | None = None,
) -> None:
    """Train (or resume) and evaluate ``rows`` in ``out``; up to ``jobs`` rows at once.

    ``rows`` are anything with a ``preset`` name; ``iterations`` None trains each
    to its preset's own number of iterations; ``overrides`` (``"key=value"``) go to
    every row's ``mmaml train --set`` (the same ones are needed to resume a row);
    ``statuses``: what :func:`check_rows_config` returned for them, if the caller has it.

    Each row trains in its own process (``mmaml train``), with the machine's
    threads shared among the concurrent rows (see :func:`threads_per_row`) and
    its output in ``<row>/train.log``.
    """

    if statuses is None:
        statuses = check_rows_config(out, rows, eval_tasks, overrides)
    out.mkdir(parents=True, exist_ok=True)
    todo = []
    for row in rows:
        run_dir = out / run_name(row)
        if _taken_elsewhere(row, run_dir, say):
            continue
        status = statuses[run_name(row)]
        target = iterations or resolve(row.preset).iterations
        if status.iteration >= target:
            if not status.evaluated:
                say(f"{run_name(row)}: trained ({status.iteration} iterations); evaluating")
                evaluate_run(run_dir, tasks=eval_tasks)
            else:
                say(f"{run_name(row)}: done ({status.iteration} iterations), skipped")
            continue
        verb = f"resuming from iteration {status.iteration}" if status.iteration else "training"
        say(f"{run_name(row)}: {verb} to {target} iterations")
        todo.append((row, run_dir, target))

    threads = threads_per_row(jobs, len(todo))
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    running: list[tuple[PresetRow, Path, subprocess.Popen, float, object]] = []
    failed = []
    try:
        _run_queue(todo, running, failed, jobs, eval_tasks, env, progress, say, overrides)
    except BaseException:
        # interrupted (Ctrl-C, or SIGTERM through the CLI): stop the rows this command
        # started, so none trains on unattended; each keeps its last checkpoint
        _stop(running)
        raise
    if failed:
        raise ConfigError(f"{len(failed)} row(s) did not finish: {', '.join(failed)}; rerun to resume them")


def _run_queue(todo, running, failed, jobs, eval_tasks, env, progress, say, overrides=()) -> None:
    """Launch ``todo`` rows up to ``jobs`` at a time, evaluate each that finishes, until none is left."""

    while todo or running:
        while todo and len(running) < jobs:
            row, run_dir, target = todo.pop(0)
            # another command on the same folder may have taken or finished the row since it was planned
            if _taken_elsewhere(row, run_dir, say):
                continue
            status = row_status(run_dir, eval_tasks)
            if status.iteration >= target:
                if not status.evaluated:
                    evaluate_run(run_dir, tasks=eval_tasks)
                continue
            resume = status.iteration > 0
            run_dir.mkdir(parents=True, exist_ok=True)
            if jobs == 1:
                proc = subprocess.Popen(_train_command(row, run_dir, target, resume, progress, overrides), env=env)
                log = None
            else:
                log = (run_dir / "train.log").open("a")
                proc = subprocess.Popen(_train_command(row, run_dir, target, resume, False, overrides), env=env,
                                        stdout=log, stderr=subprocess.STDOUT)
            running.append((row, run_dir, proc, time.time(), log))
        time.sleep(0.2)
        for entry in list(running):
            row, run_dir, proc, started, log = entry
            if proc.poll() is None:
                continue
            running.remove(entry)
            if log is not None:
                log.close()
            if proc.returncode != 0:
                failed.append(run_name(row))
                say(f"{run_name(row)}: training stopped with exit code {proc.returncode} (see {run_dir / 'train.log'}); "
                    "rerun the same command to resume it")
                continue
            say(f"{run_name(row)}: trained in {time.time() - started:.0f}s; evaluating on {eval_tasks} tasks")
            evaluate_run(run_dir, tasks=eval_tasks)


def _stop(running, grace: float = 30.0) -> None:
    """Ask every still-running row process to stop (SIGTERM), and kill those that do not within ``grace`` s."""
    for _, _, proc, _, _ in running:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.time() + grace
    for _, _, proc, _, log in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not None:
            log.close()


def evaluated_progress(result: dict, state: dict) -> dict:
    """``iterations`` the evaluated model had trained for, and its ``train_seconds``.

    When training has moved on since the evaluation (a row being extended), the
    checkpoint's time belongs to a later model, so ``train_seconds`` is None.
    """
    latest = int(state["iteration"])
    evaluated = int(result.get("iterations", latest))
    seconds = round(float(state.get("elapsed_seconds", 0.0)), 1) if evaluated == latest else None
    return {"iterations": evaluated, "train_seconds": seconds}
