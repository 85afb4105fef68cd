"""``mmaml reproduce table1``: the rows of the paper's Table 1 and the table writer.

Each row is a preset ``regression-{n}modes-{row}`` trained in ``DIR/<preset>``
by :func:`mmaml.reproduction.runner.run_rows` (which skips finished rows and
resumes interrupted ones). The table is rewritten from whatever rows of ``DIR``
have been evaluated, whichever command trained them.

With seeds (``--seeds 0,1,2``) each row trains once per seed, in
``DIR/<preset>-seed<S>``, and the table adds, per row, the mean and the standard
deviation over the seeds beside the per-task interval of each run: how much of a
row's number is the luck of its seed.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mmaml.engine.checkpoint import atomic_write_text, load_checkpoint
from mmaml.engine.config import RunConfig
from mmaml.engine.run_dir import checkpoint_path
from mmaml.errors import ConfigError
from mmaml.plotting.curves import plot_learning_curves
from mmaml.reproduction.paper import PAPER_ITERATIONS, ROW_LABELS, TABLE1
from mmaml.reproduction.runner import evaluated_progress

ROWS = tuple(ROW_LABELS)
MODES = (2, 3, 5)


@dataclass(frozen=True)
class Row:
    modes: int
    row: str
    seed: int | None = None  # None: the preset's own seed, in the folder named after the preset

    @property
    def preset(self) -> str:
        return f"regression-{self.modes}modes-{self.row}"

    @property
    def run_name(self) -> str:
        return self.preset if self.seed is None else f"{self.preset}-seed{self.seed}"

    @property
    def overrides(self) -> tuple[str, ...]:
        return () if self.seed is None else (f"seed={self.seed}",)


def select_rows(rows: Sequence[str] | None, modes: Sequence[int] | None,
                seeds: Sequence[int] | None = None) -> list[Row]:
    rows = list(rows or ROWS)
    modes = list(modes or MODES)
    bad = [r for r in rows if r not in ROWS]
    if bad:
        raise ConfigError(f"unknown row(s) {bad}; choose from {', '.join(ROWS)}")
    bad_modes = [m for m in modes if m not in MODES]
    if bad_modes:
        raise ConfigError(f"unknown mode count(s) {bad_modes}; choose from 2, 3, 5")
    if seeds is not None:
        if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
            raise ConfigError(f"--seeds must be distinct non-negative integers, got {list(seeds)}")
        eval_seed = RunConfig().eval_seed
        if eval_seed in seeds:
            raise ConfigError(f"seed {eval_seed} is the evaluation seed; training on it would start on the test tasks")
    return [Row(m, r, s) for m in modes for r in rows for s in (seeds if seeds is not None else [None])]


def seeds_in(out: Path) -> list[int]:
    """The seeds of the seeded row folders (``<preset>-seed<S>``) already in ``out``."""
    import re

    found = set()
    if Path(out).is_dir():
        for path in Path(out).iterdir():
            match = re.fullmatch(r"regression-\dmodes-[a-z-]+-seed(\d+)", path.name)
            if match and path.is_dir():
                found.add(int(match.group(1)))
    return sorted(found)


COLUMNS = ("modes", "method", "seed", "paper_post_modulation", "paper_post_adaptation", "post_modulation_mean",
           "post_modulation_ci95", "post_adaptation_mean", "post_adaptation_ci95", "test_tasks", "iterations",
           "train_seconds", "eval_seconds")


def collect(out: Path, rows: Sequence[Row]) -> list[dict]:
    """One record per row that has been evaluated in ``out``."""
    records = []
    for row in rows:
        run_dir = out / row.run_name
        eval_path = run_dir / "eval.json"
        if not eval_path.exists():
            continue
        result = json.loads(eval_path.read_text())
        state = load_checkpoint(checkpoint_path(run_dir))
        paper = TABLE1.get((row.modes, row.row), (None, None))
        records.append({
            "modes": row.modes,
            "method": ROW_LABELS[row.row],
            "seed": row.seed,
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
        method = r["method"] if r.get("seed") is None else f"{r['method']}, seed {r['seed']}"
        lines.append(
            f"| {r['modes']} | {method} | {_fmt(r['paper_post_modulation'])} "
            f"| {_fmt(r['post_modulation_mean'])} ± {_fmt(r['post_modulation_ci95'])} "
            f"| {_fmt(r['paper_post_adaptation'])} "
            f"| {_fmt(r['post_adaptation_mean'])} ± {_fmt(r['post_adaptation_ci95'])} "
            f"| {r['test_tasks']} | {its} | {_hours(r['train_seconds'])} |"
        )
    short = [r for r in records if r["iterations"] < PAPER_ITERATIONS]
    if short:
        lines.append("")
        lines.append(f"Rows marked '(of {PAPER_ITERATIONS:,})' were trained for fewer meta-iterations than the paper.")
    lines += seed_summary(records)
    return "\n".join(lines) + "\n"


def seed_spread(records: list[dict]) -> list[dict]:
    """Per (modes, method) with at least two seeded runs: the seeds' post-adaptation MSEs, their mean and standard
    deviation, and the median per-task 95% half-width of one run (the interval a single run reports)."""
    import statistics

    groups: dict[tuple[int, str], list[dict]] = {}
    for r in records:
        if r.get("seed") is not None:
            groups.setdefault((r["modes"], r["method"]), []).append(r)
    out = []
    for (modes, method), group in groups.items():
        if len(group) < 2:
            continue
        values = [g["post_adaptation_mean"] for g in group]
        out.append({"modes": modes, "method": method, "seeds": [g["seed"] for g in group], "values": values,
                    "mean": statistics.mean(values), "std": statistics.stdev(values),
                    "iterations": sorted({g["iterations"] for g in group}),
                    "per_task_ci95": statistics.median(g["post_adaptation_ci95"] for g in group)})
    return out


def seed_summary(records: list[dict]) -> list[str]:
    spread = seed_spread(records)
    if not spread:
        return []
    lines = ["", "Seed variance (post-adaptation MSE of each seed's run; std over the seeds; a single run's per-task "
             "95% half-width for comparison):", "",
             "| modes | method | seeds | per seed | mean over seeds | std over seeds | one run's ±95% | iterations |",
             "|---|---|---|---|---|---|---|---|"]
    for g in spread:
        per_seed = ", ".join(f"{v:.4f}" for v in g["values"])
        its = ", ".join(f"{i:,}" for i in g["iterations"])
        lines.append(f"| {g['modes']} | {g['method']} | {', '.join(map(str, g['seeds']))} | {per_seed} "
                     f"| {g['mean']:.4f} | {g['std']:.4f} | {g['per_task_ci95']:.4f} | {its} |")
    return lines


def render_csv(records: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})
    return buf.getvalue()


def write_table(out: Path, rows: Sequence[Row]) -> list[dict]:
    """Write ``out/table1.md``, ``out/table1.csv`` and ``out/learning_curves.png`` from the rows; returns the records."""

    records = collect(out, rows)
    atomic_write_text(out / "table1.md", render_markdown(records))
    atomic_write_text(out / "table1.csv", render_csv(records))
    plot_learning_curves({r.run_name.removeprefix("regression-"): out / r.run_name for r in rows},
                         out / "learning_curves.png", "Table 1 rows: meta-training loss")
    return records
