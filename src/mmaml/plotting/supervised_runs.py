"""The figures of supervised runs (``mmaml plot``): regression, Figure 2 (every run's fits on the same tasks
and the t-SNE of MuMoMAML embeddings); image classification, the t-SNE of each MuMoMAML run's embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mmaml.errors import ConfigError
from mmaml.metalearners import MuMoMAML
from mmaml.plotting.figure2 import plot_figure2, plot_tsne


def _models(run_dirs: Sequence[Path], loaded) -> dict:
    """``{run name: model}`` of runs of one task distribution (the folder's name, its path if taken)."""
    first = loaded[0][0]
    for d, (config, _, _) in zip(run_dirs, loaded):
        if type(config) is not type(first) or config.mode_names != first.mode_names:
            raise ConfigError(f"cannot compare {d} ({config.mode_names}) with {run_dirs[0]} ({first.mode_names}): "
                              "different tasks")
    models = {}
    for d, (_, model, _) in zip(run_dirs, loaded):
        name = Path(d).resolve().name
        models[name if name not in models else str(d)] = model
    return models


def plot_regression_runs(run_dirs: Sequence[Path], loaded, tasks, out_dir: Path) -> list[Path]:
    """Figure 2 of regression runs (``loaded``: ``load_run`` of each) on ``tasks``, in ``out_dir``."""
    return plot_figure2(_models(run_dirs, loaded), tasks, out_dir, steps=loaded[0][0].eval_inner_steps)


def plot_image_runs(run_dirs: Sequence[Path], loaded, tasks, out_dir: Path) -> list[Path]:
    """The t-SNE of each MuMoMAML image run's task embeddings on ``tasks`` (test tasks), in ``out_dir``."""
    mumo = {n: m for n, m in _models(run_dirs, loaded).items() if isinstance(m, MuMoMAML)}
    if not mumo:
        raise ConfigError("image-classification plots show MuMoMAML task embeddings; none of the runs is MuMoMAML")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [plot_tsne(m, tasks, out_dir, per_mode=100, fname="tsne.png" if len(mumo) == 1 else f"tsne_{n}.png")
            for n, m in mumo.items()]
