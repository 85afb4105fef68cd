"""Figures like the paper's Figure 2: fits before and after adaptation, and a t-SNE."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mmaml.metalearners import GradientMetaLearner, MultiMAML, MuMoMAML  # noqa: E402
from mmaml.plotting.tsne import plot_embedding_tsne  # noqa: E402
from mmaml.tasks.regression import X_RANGE, RegressionTasks  # noqa: E402

# Colours as in the paper: MuMoMAML blue, MAML green, Multi-MAML gray; further models of a kind get others.
EXTRA_COLORS = ("tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def model_colors(models: Mapping[str, GradientMetaLearner]) -> dict[str, str]:
    """A colour per model: the paper's colour for the first model of each kind."""
    used, extra, colors = set(), iter(EXTRA_COLORS * 4), {}
    for name, model in models.items():
        kind = "tab:gray" if isinstance(model, MultiMAML) else "tab:blue" if isinstance(model, MuMoMAML) else "tab:green"
        colors[name] = kind if kind not in used else next(extra)
        used.add(kind)
    return colors


def predict_curves(
    models: Mapping[str, GradientMetaLearner], tasks: RegressionTasks, per_mode: int, seed: int, steps: int, points: int = 200
):
    """Predictions of every model on the same tasks over a dense grid of x.

    Returns ``(batch, grid [P], {name: (prior [T, P], adapted [T, P])})``.
    """
    grid = torch.linspace(*X_RANGE, points)
    batch = tasks.sample(per_mode * tasks.num_modes, torch.Generator().manual_seed(seed), query_x=grid)
    curves = {}
    for name, model in models.items():
        device = next(model.parameters()).device
        model.eval()
        with torch.no_grad():
            out = model(batch.to(device), steps=steps, with_prior=True)
        curves[name] = (out.prior_query_pred.squeeze(-1).cpu(), out.query_pred.squeeze(-1).cpu())
    return batch, grid, curves


def plot_fits(
    models: Mapping[str, GradientMetaLearner],
    tasks: RegressionTasks,
    out_dir: Path,
    per_mode: int = 3,
    seed: int = 7,
    steps: int = 5,
) -> list[Path]:
    """Write ``figure2a_modulated_prior.png`` and ``figure2b_after_adaptation.png``.

    One row per mode, ``per_mode`` tasks per row: the true function (black),
    the K support points and each model's prediction.
    """
    batch, grid, curves = predict_curves(models, tasks, per_mode, seed, steps)
    colors = model_colors(models)
    paths = []
    for which, title, fname in (
        (0, "after modulation (no gradient step)", "figure2a_modulated_prior.png"),
        (1, f"after {steps} gradient steps", "figure2b_after_adaptation.png"),
    ):
        fig, axes = plt.subplots(tasks.num_modes, per_mode, figsize=(3.2 * per_mode, 2.6 * tasks.num_modes), squeeze=False)
        for t in range(batch.num_tasks):
            mode = int(batch.mode[t])
            ax = axes[mode][t % per_mode] if t < per_mode * tasks.num_modes else None
            if ax is None:
                continue
            ax.plot(grid, batch.query_y[t, :, 0], color="black", lw=1.5, label="ground truth")
            for name, pair in curves.items():
                ax.plot(grid, pair[which][t], color=colors[name], lw=1.3, label=name)
            ax.scatter(batch.support_x[t, :, 0], batch.support_y[t, :, 0], color="red", s=18, zorder=5, label="support")
            ax.set_title(tasks.modes[mode], fontsize=9)
            ax.tick_params(labelsize=7)
        axes[0][0].legend(fontsize=7, loc="best")
        fig.suptitle(f"Few-shot regression, {title}")
        fig.tight_layout()
        path = Path(out_dir) / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_tsne(model: MuMoMAML, tasks: RegressionTasks, out_dir: Path, per_mode: int = 150, seed: int = 11,
              fname: str = "figure2c_tsne.png", iterations: int | None = None) -> Path:
    """t-SNE of task embeddings from fresh tasks, coloured by mode.

    ``iterations``, when given, goes in the title, so a figure from a short run says so.
    """
    batch = tasks.sample(per_mode * tasks.num_modes, torch.Generator().manual_seed(seed))
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        emb = model.embed(batch.to(device)).cpu().numpy()
    trained = f", {iterations:,} meta-iterations" if iterations is not None else ""
    return plot_embedding_tsne(torch.from_numpy(emb), batch.mode, tasks.modes, Path(out_dir) / fname,
                               f"t-SNE of task embeddings ({tasks.num_modes} modes{trained})")


def plot_figure2(models: Mapping[str, GradientMetaLearner], tasks: RegressionTasks, out_dir: Path, steps: int = 5) -> list[Path]:
    """All panels: fits of every model, and the t-SNE of each MuMoMAML model."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = plot_fits(models, tasks, out_dir, steps=steps)
    mumo = [(n, m) for n, m in models.items() if isinstance(m, MuMoMAML)]
    for n, m in mumo:
        fname = "figure2c_tsne.png" if len(mumo) == 1 else f"figure2c_tsne_{n}.png"
        paths.append(plot_tsne(m, tasks, out_dir, fname=fname))
    return paths
