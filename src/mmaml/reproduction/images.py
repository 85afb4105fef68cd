"""``mmaml reproduce images``: the image-classification comparison, resumable, with its table.

Rows are presets ``classification[-cpu]-{n}modes-{method}-{setting}`` trained in
``DIR/<preset>`` exactly as :mod:`mmaml.reproduction.table1` trains its rows
(skip finished, resume interrupted); the table puts the paper's accuracy (84x84
images, 60,000 iterations, mini-ImageNet etc.) beside ours and says which scale
each row ran at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mmaml.engine.checkpoint import atomic_write_text, load_checkpoint
from mmaml.engine.run_dir import checkpoint_path
from mmaml.engine.saved_evaluation import same_tasks
from mmaml.engine.statistics import paired_difference
from mmaml.errors import ConfigError
from mmaml.presets import PRESETS
from mmaml.reproduction.paper import IMAGE_ACCURACY, IMAGE_METHOD_INDEX
from mmaml.reproduction.runner import evaluated_progress

METHODS = ("maml", "multi-maml", "mumomaml")
LABELS = {"maml": "MAML", "multi-maml": "Multi-MAML", "mumomaml": "MuMoMAML (FiLM)"}


@dataclass(frozen=True)
class ImageRow:
    scale: str  # "cpu" or "paper"
    modes: int
    method: str
    setting: str  # 5w1s, 5w5s, 20w1s

    @property
    def preset(self) -> str:
        middle = "cpu-" if self.scale == "cpu" else ""
        return f"classification-{middle}{self.modes}modes-{self.method}-{self.setting}"


def select_image_rows(scale: str, modes: Sequence[int] | None, settings: Sequence[str] | None,
                      methods: Sequence[str] | None) -> list[ImageRow]:
    if scale not in ("cpu", "paper"):
        raise ConfigError(f"unknown scale {scale!r}; choose cpu or paper")
    rows = [ImageRow(scale, m, meth, s) for m in (modes or (2, 3, 5)) for s in (settings or ("5w1s", "5w5s", "20w1s"))
            for meth in (methods or METHODS)]
    bad = [r.method for r in rows if r.method not in METHODS]
    if bad:
        raise ConfigError(f"unknown method(s) {sorted(set(bad))}; choose from {', '.join(METHODS)}")
    chosen = [r for r in rows if r.preset in PRESETS]
    if not chosen:
        raise ConfigError(f"no {scale}-scale preset matches; run 'mmaml presets' to see them")
    return chosen


def collect(out: Path, rows: Sequence[ImageRow]) -> list[dict]:
    records = []
    for row in rows:
        eval_path = out / row.preset / "eval.json"
        if not eval_path.exists():
            continue
        result = json.loads(eval_path.read_text())
        state = load_checkpoint(checkpoint_path(out / row.preset))
        paper = IMAGE_ACCURACY.get((row.modes, row.setting))
        records.append({
            "preset": row.preset,
            "scale": row.scale,
            "modes": "+".join(result["modes"]),
            "setting": row.setting,
            "method": LABELS[row.method],
            "paper_accuracy": None if paper is None else paper[IMAGE_METHOD_INDEX[row.method]] / 100,
            "post_modulation_accuracy": result["post_modulation_accuracy"]["mean"],
            "post_modulation_ci95": result["post_modulation_accuracy"]["ci95"],
            "post_adaptation_accuracy": result["post_adaptation_accuracy"]["mean"],
            "post_adaptation_ci95": result["post_adaptation_accuracy"]["ci95"],
            "per_mode_post_adaptation": {k: v["post_adaptation_accuracy"]["mean"] for k, v in result["per_mode"].items()},
            "test_tasks": result["num_tasks"],
            **evaluated_progress(result, state),
        })
    add_paired_differences(out, records)
    return records


def _per_task(out: Path, preset: str) -> dict | None:
    path = out / preset / "eval_per_task.json"
    return json.loads(path.read_text()) if path.exists() else None


def add_paired_differences(out: Path, records: list[dict]) -> None:
    """Give each non-MAML record ``vs_maml``: its post-adaptation accuracy minus MAML's, task by task.

    Only where the MAML row of the same modes and setting was scored on the same
    tasks (same seed and number of tasks); otherwise ``vs_maml`` is None.
    """
    import torch

    maml = {(r["modes"], r["setting"]): r for r in records if r["method"] == LABELS["maml"]}
    for r in records:
        r["vs_maml"] = None
        reference = maml.get((r["modes"], r["setting"]))
        if reference is None or reference is r:
            continue
        a, b = _per_task(out, reference["preset"]), _per_task(out, r["preset"])
        if a is None or b is None or not same_tasks(a, b):
            continue
        diff = paired_difference(torch.tensor(a["post_adaptation"]), torch.tensor(b["post_adaptation"]),
                                 torch.tensor(a["mode"]), list(r["per_mode_post_adaptation"]))
        r["vs_maml"] = {"mean": diff["mean"], "ci95": diff["ci95"]}


def render_markdown(records: list[dict]) -> str:
    lines = [
        "| data sets | setting | method | paper (84x84, 60k it., paper's data sets) | ours after modulation | "
        "ours after adaptation (±95%) | minus MAML, same tasks (±95%) | per data set after adaptation | test tasks "
        "| iterations | train time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        paper = "—" if r["paper_accuracy"] is None else f"{100 * r['paper_accuracy']:.2f}%"
        per_mode = ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["per_mode_post_adaptation"].items())
        train_time = "—" if r["train_seconds"] is None else f"{r['train_seconds'] / 60:.1f} min"
        vs = r.get("vs_maml")
        versus = "—" if vs is None else f"{100 * vs['mean']:+.2f} ± {100 * vs['ci95']:.2f} points"
        lines.append(
            f"| {r['modes']} | {r['setting']} | {r['method']} | {paper} | {100 * r['post_modulation_accuracy']:.2f}% "
            f"| {100 * r['post_adaptation_accuracy']:.2f}% ± {100 * r['post_adaptation_ci95']:.2f} | {versus} | {per_mode} "
            f"| {r['test_tasks']} | {r['iterations']:,} | {train_time} |"
        )
    if any(r["scale"] == "cpu" for r in records):
        lines += ["", "CPU-scale rows use 28x28 images, 32 channels per layer, 5 queries per class and far fewer "
                  "iterations, and Tiny ImageNet / Double Fashion-MNIST in place of mini-ImageNet / FC100: "
                  "compare methods within a setting, not with the paper's absolute numbers.",
                  "", "'minus MAML, same tasks': the row's accuracy minus MAML's, task by task on the same test tasks "
                  "(paired), in percentage points; its interval is much narrower than those of the two means."]
    return "\n".join(lines) + "\n"


def write_table(out: Path, rows: Sequence[ImageRow]) -> list[dict]:
    records = collect(out, rows)
    atomic_write_text(out / "images.md", render_markdown(records))
    atomic_write_text(out / "images.json", json.dumps(records, indent=2) + "\n")
    return records
