"""``mmaml reproduce table1``: train and evaluate every row, resumably, and write the table.

Each row is a preset ``regression-{n}modes-{row}`` trained in ``DIR/<preset>``.
A row whose checkpoint has reached the target iterations and whose
``eval.json`` matches is skipped; a row with an earlier checkpoint resumes from
it (same data stream, optimizer and RNG state); a trained row without an
evaluation is only evaluated; a row that another process is training now (its
folder is locked, see :mod:`mmaml.training.run_lock`) is left to it. The table
is rewritten from whatever rows exist.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence


from mmaml.errors import ConfigError
from mmaml.reproduction.paper import PAPER_ITERATIONS, ROW_LABELS, TABLE1
from mmaml.training.checkpoint import atomic_write_text, load_checkpoint
from mmaml.training.presets import resolve
from mmaml.training.run_dir import checkpoint_path
from mmaml.training.run_lock import lock_holder

ROWS = tuple(ROW_LABELS)
MODES = (2, 3, 5)


@dataclass(frozen=True)
class Row:
    modes: int
    row: str

    @property
    def preset(self) -> str:
        return f"regression-{self.modes}modes-{self.row}"


def select_rows(rows: Sequence[str] | None, modes: Sequence[int] | None) -> list[Row]:
    rows = list(rows or ROWS)
    modes = list(modes or MODES)
    bad = [r for r in rows if r not in ROWS]
    if bad:
        raise ConfigError(f"unknown row(s) {bad}; choose from {', '.join(ROWS)}")
    bad_modes = [m for m in modes if m not in MODES]
    if bad_modes:
        raise ConfigError(f"unknown mode count(s) {bad_modes}; choose from 2, 3, 5")
    return [Row(m, r) for m in modes for r in rows]


@dataclass
class RowStatus:
    iteration: int  # checkpoint iteration, 0 when untrained
    evaluated: bool  # eval.json matches the checkpoint and the requested number of tasks


def row_status(run_dir: Path, eval_tasks: int) -> RowStatus:
    ckpt = checkpoint_path(run_dir)
    if not ckpt.exists():
        return RowStatus(0, False)
    iteration = int(load_checkpoint(ckpt)["iteration"])
    evaluated = False
    eval_path = run_dir / "eval.json"
    if eval_path.exists():
        try:
            result = json.loads(eval_path.read_text())
            evaluated = (result.get("iterations") == iteration and result.get("num_tasks", 0) >= eval_tasks
                         and (run_dir / "eval_per_task.json").exists())
        except (json.JSONDecodeError, AttributeError):
            evaluated = False
    return RowStatus(iteration, evaluated)


def _train_command(row, run_dir: Path, iterations: int, resume: bool, progress: bool) -> list[str]:
    cmd = [sys.executable, "-m", "mmaml", "train", row.preset, "--out", str(run_dir), "--iterations", str(iterations)]
    if resume:
        cmd.append("--resume")
    if not progress:
        cmd.append("--no-progress")
    return cmd


def threads_per_row(jobs: int, rows: int) -> int:
    """Threads for each concurrently trained row: ``$OMP_NUM_THREADS`` when set
    (e.g. to leave cores for other work), else the machine's cores shared among them."""
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return max(1, (os.cpu_count() or 1) // max(1, min(jobs, rows or 1)))


def run_rows(
    out: Path,
    rows: Sequence,
    iterations: int | None,
    eval_tasks: int,
    jobs: int = 1,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> None:
    """Train (or resume) and evaluate ``rows`` in ``out``; up to ``jobs`` rows at once.

    ``rows`` are anything with a ``preset`` name; ``iterations`` None trains each
    to its preset's own number of iterations.

    Each row trains in its own process (``mmaml train``), with the machine's
    threads shared among the concurrent rows (see :func:`threads_per_row`) and
    its output in ``<row>/train.log``.
    """
    from mmaml.cli.commands import run_eval

    out.mkdir(parents=True, exist_ok=True)
    todo = []
    for row in rows:
        run_dir = out / row.preset
        busy = lock_holder(run_dir)
        if busy is not None:
            say(f"{row.preset}: being trained by another process{f' (pid {busy})' if busy else ''}; skipped")
            continue
        status = row_status(run_dir, eval_tasks)
        target = iterations or resolve(row.preset).iterations
        if status.iteration >= target:
            if not status.evaluated:
                say(f"{row.preset}: trained ({status.iteration} iterations); evaluating")
                run_eval(run_dir, tasks=eval_tasks)
            else:
                say(f"{row.preset}: done ({status.iteration} iterations), skipped")
            continue
        verb = f"resuming from iteration {status.iteration}" if status.iteration else "training"
        say(f"{row.preset}: {verb} to {target} iterations")
        todo.append((row, run_dir, status.iteration > 0, target))

    threads = threads_per_row(jobs, len(todo))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    running: list[tuple[Row, Path, subprocess.Popen, float, object]] = []
    failed = []
    while todo or running:
        while todo and len(running) < jobs:
            row, run_dir, resume, target = todo.pop(0)
            run_dir.mkdir(parents=True, exist_ok=True)
            if jobs == 1:
                proc = subprocess.Popen(_train_command(row, run_dir, target, resume, progress), env=env)
                log = None
            else:
                log = (run_dir / "train.log").open("a")
                proc = subprocess.Popen(_train_command(row, run_dir, target, resume, False), env=env,
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
                failed.append(row.preset)
                say(f"{row.preset}: training stopped with exit code {proc.returncode} (see {run_dir / 'train.log'}); "
                    "rerun the same command to resume it")
                continue
            say(f"{row.preset}: trained in {time.time() - started:.0f}s; evaluating on {eval_tasks} tasks")
            run_eval(run_dir, tasks=eval_tasks)
    if failed:
        raise ConfigError(f"{len(failed)} row(s) did not finish: {', '.join(failed)}; rerun to resume them")


COLUMNS = ("modes", "method", "paper_post_modulation", "paper_post_adaptation", "post_modulation_mean",
           "post_modulation_ci95", "post_adaptation_mean", "post_adaptation_ci95", "test_tasks", "iterations",
           "train_seconds", "eval_seconds")


def collect(out: Path, rows: Sequence[Row]) -> list[dict]:
    """One record per row that has been evaluated in ``out``."""
    records = []
    for row in rows:
        run_dir = out / row.preset
        eval_path = run_dir / "eval.json"
        if not eval_path.exists():
            continue
        result = json.loads(eval_path.read_text())
        state = load_checkpoint(checkpoint_path(run_dir))
        paper = TABLE1.get((row.modes, row.row), (None, None))
        records.append({
            "modes": row.modes,
            "method": ROW_LABELS[row.row],
            "paper_post_modulation": paper[0],
            "paper_post_adaptation": paper[1],
            "post_modulation_mean": result["post_modulation_mse"]["mean"],
            "post_modulation_ci95": result["post_modulation_mse"]["ci95"],
            "post_adaptation_mean": result["post_adaptation_mse"]["mean"],
            "post_adaptation_ci95": result["post_adaptation_mse"]["ci95"],
            "test_tasks": result["num_tasks"],
            **evaluated_progress(result, state),
            "eval_seconds": round(float(result.get("seconds", 0.0)), 1),
        })
    return records


def _fmt(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def evaluated_progress(result: dict, state: dict) -> dict:
    """``iterations`` the evaluated model had trained for, and its ``train_seconds``.

    When training has moved on since the evaluation (a row being extended), the
    checkpoint's time belongs to a later model, so ``train_seconds`` is None.
    """
    latest = int(state["iteration"])
    evaluated = int(result.get("iterations", latest))
    seconds = round(float(state.get("elapsed_seconds", 0.0)), 1) if evaluated == latest else None
    return {"iterations": evaluated, "train_seconds": seconds}


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds:.0f} s"


def render_markdown(records: list[dict]) -> str:
    lines = [
        "| modes | method | paper post-mod. | ours post-mod. (±95%) | paper post-adapt. | ours post-adapt. (±95%) "
        "| test tasks | meta-iterations | train time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        its = f"{r['iterations']:,}" + ("" if r["iterations"] >= PAPER_ITERATIONS else f" (of {PAPER_ITERATIONS:,})")
        lines.append(
            f"| {r['modes']} | {r['method']} | {_fmt(r['paper_post_modulation'])} "
            f"| {_fmt(r['post_modulation_mean'])} ± {_fmt(r['post_modulation_ci95'])} "
            f"| {_fmt(r['paper_post_adaptation'])} "
            f"| {_fmt(r['post_adaptation_mean'])} ± {_fmt(r['post_adaptation_ci95'])} "
            f"| {r['test_tasks']} | {its} | {_hours(r['train_seconds'])} |"
        )
    short = [r for r in records if r["iterations"] < PAPER_ITERATIONS]
    if short:
        lines.append("")
        lines.append(f"Rows marked '(of {PAPER_ITERATIONS:,})' were trained for fewer meta-iterations than the paper.")
    return "\n".join(lines) + "\n"


def render_csv(records: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})
    return buf.getvalue()


def write_table(out: Path, rows: Sequence[Row]) -> list[dict]:
    """Write ``out/table1.md``, ``out/table1.csv`` and ``out/learning_curves.png`` from the rows; returns the records."""
    from mmaml.plotting.curves import plot_learning_curves

    records = collect(out, rows)
    atomic_write_text(out / "table1.md", render_markdown(records))
    atomic_write_text(out / "table1.csv", render_csv(records))
    plot_learning_curves({r.preset.removeprefix("regression-"): out / r.preset for r in rows},
                         out / "learning_curves.png", "Table 1 rows: meta-training loss")
    return records
