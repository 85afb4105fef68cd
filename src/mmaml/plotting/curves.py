"""Learning curves: the logged meta-training loss of several runs."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mmaml.training.metrics_log import read_metrics  # noqa: E402


def plot_learning_curves(runs: Mapping[str, Path], path: Path, title: str = "meta-training loss") -> Path | None:
    """One line per run (post-adaptation query loss on the training tasks, log scale); None when no run logged."""
    curves = {}
    for name, run_dir in runs.items():
        if (Path(run_dir) / "metrics.csv").exists():
            rows = read_metrics(run_dir)
            if rows:
                curves[name] = ([r["iteration"] for r in rows], [r["loss"] for r in rows])
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (x, y) in curves.items():
        ax.plot(x, y, lw=1, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel("query loss after adaptation (training tasks)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
