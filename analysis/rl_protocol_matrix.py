"""Tabulate a protocol matrix of meta-RL runs: for each cell (a protocol) and seed, MAML against MuMoMAML on
the validation goals (what chooses) and on the test goals at the best-by-validation and last checkpoints
(paired MuMoMAML - MAML after modulation and after each step, mode identification).

Each run folder must hold ``eval.json`` and ``eval_best.json`` with their per-task files (``mmaml eval RUN
--tasks 400`` and ``... --checkpoint best``), all of one seed and number of test goals. A cell is given as
``LABEL=MAML_DIR:MUMOMAML_DIR`` with ``{seed}`` where the seed goes:

    python analysis/rl_protocol_matrix.py --out docs/results/rl --seeds 0,1 \
        --cell "TRPO, seed flow=m/a/maml-s{seed}:m/a/mumomaml-s{seed}" ...

Writes ``matrix.md`` and ``matrix.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

from mmaml.engine.statistics import mean_ci95, paired_difference


def validation(run: Path, every: int) -> dict:
    """The run's validation returns by step: at the best iteration (by the return after one step) and the last."""
    rows = [r for r in csv.DictReader((run / "metrics.csv").open())
            if r.get("val_return_step1") and int(r["iteration"]) % every == 0]  # validation rows only
    best = max(rows, key=lambda r: float(r["val_return_step1"]))
    steps = sum(1 for k in best if k.startswith("val_return_step"))
    return {"validations": len(rows), "best_iteration": int(best["iteration"]),
            "best": [float(best[f"val_return_step{k}"]) for k in range(steps)],
            "last": [float(rows[-1][f"val_return_step{k}"]) for k in range(steps)]}


def scores(run: Path, which: str) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """``(eval result, returns [S + 1, n], mode [n])`` of the run's ``last`` or ``best`` evaluation."""
    name = "eval_best" if which == "best" else "eval"
    result = json.loads((run / f"{name}.json").read_text())
    per_task = json.loads((run / f"{name}_per_task.json").read_text())
    return result, torch.tensor(per_task["returns_by_step"]), torch.tensor(per_task["mode"])


def by_mode(returns: torch.Tensor, mode: torch.Tensor, names: list[str]) -> dict[str, list[dict]]:
    """Each mode's return after 0..S steps, ``{name: [{mean, ci95}, ...]}`` (``returns [S + 1, n]``)."""
    return {name: [mean_ci95(r[mode == i]) for r in returns] for i, name in enumerate(names)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", action="append", required=True)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--validate-every", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    table = ["| protocol | seed | checkpoint (iteration MAML / MuMoMAML) | validation after 1 step, MAML / MuMoMAML "
             "| test: MuMoMAML - MAML, paired: after modulation / 1 / 2 / 3 steps | test: MuMoMAML after 1 step "
             "| mode identification (k-NN / linear probe) |",
             "|---|---|---|---|---|---|---|"]
    out = {}
    for cell in args.cell:
        label, dirs = cell.split("=", 1)
        maml_dir, mumo_dir = dirs.split(":")
        for seed in args.seeds.split(","):
            a, b = Path(maml_dir.format(seed=seed)), Path(mumo_dir.format(seed=seed))
            if not all((d / f).exists() for d in (a, b) for f in ("eval.json", "eval_best.json")):
                print(f"skipped {label}, seed {seed}: not evaluated yet")
                continue
            va, vb = validation(a, args.validate_every), validation(b, args.validate_every)
            for which in ("best", "last"):
                ra, sa, mode = scores(a, which)
                rb, sb, mode_b = scores(b, which)
                if not torch.equal(mode, mode_b) or ra["seed"] != rb["seed"]:
                    raise SystemExit(f"{a} and {b} were not evaluated on the same goals")
                names = list(ra["per_mode"])
                diffs = [paired_difference(sa[k], sb[k], mode, names) for k in range(sa.shape[0])]
                mi = rb.get("mode_identification")
                out[f"{label}, seed {seed}, {which}"] = {
                    "maml": str(a), "mumomaml": str(b), "checkpoint": which, "seed": int(seed),
                    "iterations": [ra["iterations"], rb["iterations"]], "num_tasks": ra["num_tasks"],
                    "maml_validation": va, "mumomaml_validation": vb,
                    "maml_returns_by_step": [mean_ci95(r) for r in sa],
                    "mumomaml_returns_by_step": [mean_ci95(r) for r in sb],
                    "maml_returns_by_mode": by_mode(sa, mode, names),
                    "mumomaml_returns_by_mode": by_mode(sb, mode, names),
                    "difference_by_step": diffs, "mumomaml_mode_identification": mi}
                pick = "best" if which == "best" else "last"
                own = mean_ci95(sb[1])
                table.append(
                    f"| {label} | {seed} | {which} ({ra['iterations']} / {rb['iterations']}) | "
                    f"{va[pick][1]:.2f} / {vb[pick][1]:.2f} | "
                    + " / ".join(f"{d['mean']:+.2f} ± {d['ci95']:.2f}" for d in diffs)
                    + f" | {own['mean']:.2f} ± {own['ci95']:.2f} | "
                    + (f"{100 * mi['knn_accuracy']:.1f}% / {100 * mi['linear_accuracy']:.1f}%" if mi else "-") + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "matrix.json").write_text(json.dumps(out, indent=1) + "\n")
    (args.out / "matrix.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
