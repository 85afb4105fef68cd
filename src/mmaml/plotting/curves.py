"""Learning curves: the logged meta-training loss of several runs."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mmaml.engine.metrics_log import read_metrics  # noqa: E402


def running_median(values: Sequence[float], window: int) -> list[float]:
    """Median of each value and the ``window - 1`` before it (fewer at the start).

    Unclamped inner loops now and then meet a meta-batch with an enormous loss;
    one such logged mean would set a log-scale axis for the whole plot, so the
    curves show this median instead (the raw values stay in ``metrics.csv``).
    """
    if window < 1:
        raise ValueError("window must be at least 1")
    return [statistics.median(values[max(0, i - window + 1):i + 1]) for i in range(len(values))]


def plot_learning_curves(runs: Mapping[str, Path], path: Path, title: str = "meta-training loss",
                         window: int = 10) -> Path | None:
    """One line per run: post-adaptation query loss on the training tasks, log scale.

    Each point is the running median of ``window`` logged values (a logged value is
    the mean over ``log_every`` iterations). None when no run logged anything.
    """
    curves = {}
    for name, run_dir in runs.items():
        if (Path(run_dir) / "metrics.csv").exists():
            rows = read_metrics(run_dir)
            if rows:
                curves[name] = ([r["iteration"] for r in rows], running_median([r["loss"] for r in rows], window))
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (x, y) in curves.items():
        ax.plot(x, y, lw=1, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(f"query loss after adaptation\n(training tasks, running median of {window} logs)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
