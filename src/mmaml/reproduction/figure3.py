"""``mmaml reproduce figure3``: the meta-RL rows of the paper's Figure 3 (and Figure 4), resumable.

Rows are the presets ``rl-{env}-{maml,mumomaml}`` for the bimodal 2D navigation
and the half-cheetah target speed and target location, trained in ``DIR/<preset>``
by :func:`mmaml.reproduction.runner.run_rows` (finished rows skipped, interrupted
ones resumed, each evaluated on the same test goals as its partner). Then:

* ``figure3.md`` / ``figure3.csv``: per environment and method, the average return
  after modulation (MAML: initial) and after each gradient step (mean and 95%
  interval), the paired difference MuMoMAML - MAML on the same test goals at
  every step, iterations run and training time;
* ``figures/figure3_adaptation.png``: the adaptation-curve panels side by side
  (Figure 3a-c);
* ``figures/<env>/``: each environment's ``mmaml plot`` figures: the adaptation
  curve, training curves, trajectories (Figure 3d for navigation; x-position or
  velocity against the target for the half-cheetah) and the t-SNE of the task
  embeddings (Figure 4 for the target location).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mmaml.engine.checkpoint import atomic_write_text, load_checkpoint
from mmaml.engine.run_dir import best_checkpoint_path, checkpoint_path
from mmaml.engine.saved_evaluation import same_tasks
from mmaml.engine.statistics import paired_difference
from mmaml.errors import ConfigError
from mmaml.plotting.figure3 import plot_adaptation_panels
from mmaml.presets import PRESETS, resolve
from mmaml.reproduction.runner import evaluated_progress
from mmaml.runs import evaluate_run, plot_runs

ENVS = {"navigation": "2D navigation (bimodal)", "cheetah-speed": "half-cheetah target speed",
        "cheetah-location": "half-cheetah target location"}
METHODS = ("maml", "mumomaml")
LABELS = {"maml": "MAML", "mumomaml": "MuMoMAML"}


@dataclass(frozen=True)
class RLRow:
    env: str  # a key of ENVS
    method: str  # maml | mumomaml

    @property
    def preset(self) -> str:
        return f"rl-{self.env}-{self.method}"


def select_rl_rows(envs: Sequence[str] | None, methods: Sequence[str] | None) -> list[RLRow]:
    """The rows of the chosen environments and methods (all by default), in table order."""
    bad = [e for e in envs or () if e not in ENVS] + [m for m in methods or () if m not in METHODS]
    if bad:
        raise ConfigError(f"unknown environment or method {', '.join(bad)}; environments: {', '.join(ENVS)}; "
                          f"methods: {', '.join(METHODS)}")
    return [RLRow(e, m) for e in (envs or ENVS) for m in (methods or METHODS)]


def eval_name(checkpoint: str) -> str:
    """The stem of a row's evaluation of its ``last`` (``eval``) or ``best`` (``eval_best``) checkpoint."""
    return "eval" if checkpoint == "last" else f"eval_{checkpoint}"


def _load(out: Path, row: RLRow, checkpoint: str = "last") -> tuple[dict, dict, dict] | None:
    """``(eval.json, eval_per_task.json, checkpoint state)`` of an evaluated row, else None (``eval_best*``
    and ``best.pt`` for the best checkpoint)."""
    run_dir = out / row.preset
    stem = eval_name(checkpoint)
    ckpt = checkpoint_path(run_dir) if checkpoint == "last" else best_checkpoint_path(run_dir)
    paths = [run_dir / f"{stem}.json", run_dir / f"{stem}_per_task.json", ckpt]
    if not all(p.exists() for p in paths):
        return None
    return json.loads(paths[0].read_text()), json.loads(paths[1].read_text()), load_checkpoint(paths[2])


def paired_by_step(reference: dict, other: dict, modes: Sequence[str]) -> list[dict] | None:
    """``other - reference`` goal by goal at every step (mean, 95% interval); None unless both saw the same goals."""
    import torch

    if not same_tasks(reference, other):
        return None
    steps = min(len(reference["returns_by_step"]), len(other["returns_by_step"]))
    mode = torch.tensor(reference["mode"])
    return [paired_difference(torch.tensor(reference["returns_by_step"][k]), torch.tensor(other["returns_by_step"][k]),
                              mode, list(modes)) for k in range(steps)]


def collect(out: Path, rows: Sequence[RLRow], checkpoint: str = "last") -> list[dict]:
    """One record per evaluated row, with ``vs_maml`` (per step) for MuMoMAML where its MAML row was scored alike."""
    loaded = {row: _load(out, row, checkpoint) for row in rows}
    records = []
    for row in rows:
        if loaded[row] is None:
            continue
        result, per_task, state = loaded[row]
        record = {"env": row.env, "environment": ENVS[row.env], "method": LABELS[row.method], "preset": row.preset,
                  "returns_by_step": result["returns_by_step"], "test_tasks": result["num_tasks"],
                  "episodes_per_task": result.get("episodes_per_task"), "preset_iterations": _preset_iterations(row),
                  "reference_returns": result.get("reference_returns", {}), "vs_maml": None,
                  **evaluated_progress(result, state)}
        partner = loaded.get(RLRow(row.env, "maml"))
        if row.method == "mumomaml" and partner is not None:
            record["vs_maml"] = paired_by_step(partner[1], per_task, result["modes"])
        records.append(record)
    return records


def _preset_iterations(row: RLRow) -> int:
    return resolve(row.preset).iterations


def _cell(stat: dict | None, sign: bool = False) -> str:
    if stat is None:
        return "—"
    return f"{stat['mean']:+.2f} ± {stat['ci95']:.2f}" if sign else f"{stat['mean']:.2f} ± {stat['ci95']:.2f}"


def render_markdown(records: list[dict]) -> str:
    steps = max((len(r["returns_by_step"]) for r in records), default=1)
    head = ["environment", "method", "after modulation (MAML: initial)"] + [
        f"after {k} step{'s' if k > 1 else ''}" for k in range(1, steps)] + ["test goals", "iterations", "train time"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        cells = [_cell(s) for s in r["returns_by_step"]] + ["—"] * (steps - len(r["returns_by_step"]))
        time_cell = "—" if r["train_seconds"] is None else f"{r['train_seconds'] / 60:.1f} min"
        iterations = f"{r['iterations']:,}"
        if r["iterations"] < r["preset_iterations"]:  # a shorter run is marked, never silently
            iterations += f" (of {r['preset_iterations']:,})"
        lines.append(f"| {r['environment']} | {r['method']} | " + " | ".join(cells)
                     + f" | {r['test_tasks']} | {iterations} | {time_cell} |")
        if r["vs_maml"] is not None:
            diffs = [_cell(d, sign=True) for d in r["vs_maml"]] + ["—"] * (steps - len(r["vs_maml"]))
            lines.append(f"| {r['environment']} | **MuMoMAML - MAML (paired)** | " + " | ".join(diffs) + " | | | |")
    episodes = sorted({r["episodes_per_task"] for r in records if r["episodes_per_task"]})
    each = f" ({' or '.join(map(str, episodes))} episodes each)" if episodes else ""
    lines += ["", f"Average undiscounted return per episode, mean ± 95% interval over the test goals{each}; "
              "the paired row is the goal-by-goal difference on the same goals; '(of N)': shorter than the "
              "preset's N iterations."]
    refs = {r["environment"]: r["reference_returns"] for r in records if r["reference_returns"]}
    for env, ref in refs.items():
        lines.append(f"References on the same goals, {env}: " + ", ".join(
            f"{name.replace('_', ' ')} {v['mean']:.2f} ± {v['ci95']:.2f}" for name, v in ref.items()) + ".")
    return "\n".join(lines) + "\n"


def render_csv(records: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["env", "method", "step", "mean", "ci95", "vs_maml_mean", "vs_maml_ci95", "test_tasks",
                     "iterations", "train_seconds"])
    for r in records:
        for k, s in enumerate(r["returns_by_step"]):
            d = r["vs_maml"][k] if r["vs_maml"] is not None and k < len(r["vs_maml"]) else None
            writer.writerow([r["env"], r["method"], k, f"{s['mean']:.4f}", f"{s['ci95']:.4f}",
                             "" if d is None else f"{d['mean']:.4f}", "" if d is None else f"{d['ci95']:.4f}",
                             r["test_tasks"], r["iterations"], "" if r["train_seconds"] is None else r["train_seconds"]])
    return buffer.getvalue()


def table_name(checkpoint: str) -> str:
    """``figure3`` (last checkpoints) or ``figure3_best`` (best by validation)."""
    return "figure3" if checkpoint == "last" else f"figure3_{checkpoint}"


def write_table(out: Path, rows: Sequence[RLRow], checkpoint: str = "last") -> list[dict]:
    records = collect(out, rows, checkpoint)
    atomic_write_text(out / f"{table_name(checkpoint)}.md", render_markdown(records))
    atomic_write_text(out / f"{table_name(checkpoint)}.csv", render_csv(records))
    return records


def evaluate_best(out: Path, rows: Sequence[RLRow], eval_tasks: int, say=print) -> None:
    """Score each trained row's ``best.pt`` on the test goals (``eval_best.json``) unless that is done already."""

    for row in rows:
        run_dir = out / row.preset
        best = best_checkpoint_path(run_dir)
        if not best.exists():
            if checkpoint_path(run_dir).exists():
                say(f"{row.preset}: no best.pt (the run did not validate); not in the best-checkpoint table")
            continue
        iteration = int(load_checkpoint(best)["iteration"])
        done = _load(out, row, "best")
        if done is not None and done[0].get("iterations") == iteration and done[0].get("num_tasks", 0) >= eval_tasks:
            continue
        say(f"{row.preset}: evaluating its best checkpoint (iteration {iteration})")
        evaluate_run(run_dir, tasks=eval_tasks, checkpoint="best")


def write_figures(out: Path, rows: Sequence[RLRow]) -> list[Path]:
    """The combined adaptation curves and each environment's ``mmaml plot`` figures (environments whose rows are
    all evaluated)."""

    fig_dir = out / "figures"
    panels, paths = {}, []
    for env in dict.fromkeys(r.env for r in rows):
        mine = [r for r in rows if r.env == env]
        if not all((out / r.preset / "eval.json").exists() for r in mine):
            continue
        # MuMoMAML first: its figures are the run's own, MAML's are drawn beside them
        ordered = sorted(mine, key=lambda r: r.method != "mumomaml")
        paths += plot_runs([out / r.preset for r in ordered], fig_dir / env)
        panels[ENVS[env]] = {f"{LABELS[r.method]}": json.loads((out / r.preset / "eval.json").read_text())
                             for r in mine}
    if panels:
        paths.append(plot_adaptation_panels(panels, fig_dir / "figure3_adaptation.png"))
    return paths


def check_rows(rows: Sequence[RLRow]) -> None:
    """Refuse rows without a preset (``ConfigError``); their ``--set`` values are checked with their
    folders' configs by :func:`mmaml.reproduction.runner.check_rows_config`."""

    missing = [r.preset for r in rows if r.preset not in PRESETS]
    if missing:
        raise ConfigError(f"no preset {', '.join(missing)}")
