"""Figures like the paper's Figure 3 (meta-RL): adaptation curves, trajectories over the goal density, t-SNE.

For the half-cheetah (one-number goals) :func:`plot_progress` draws the x-position
or the forward velocity over time against each task's target instead of paths in
the plane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmaml.engine.metrics_log import read_metrics
from mmaml.plotting.curves import running_median
from mmaml.rl.envs.goals import GoalDistribution
from mmaml.rl.metalearner import Rollouts


def _draw_adaptation(ax, results: Mapping[str, dict[str, Any]], title: str) -> None:
    """Average return (mean ± 95% interval) against gradient steps on ``ax``, one line per run."""
    for label, r in results.items():
        means = np.array([s["mean"] for s in r["returns_by_step"]])
        ci = np.array([s["ci95"] for s in r["returns_by_step"]])
        steps = np.arange(len(means))
        color = "tab:blue" if "mumomaml" in label.lower() else "tab:green" if "maml" in label.lower() else None
        ax.errorbar(steps, means, yerr=ci, marker="o", capsize=3, label=label, color=color)
    count = max(len(r["returns_by_step"]) for r in results.values())
    ax.set_xticks(range(count))
    ax.set_xticklabels(["after modulation\n(MAML: initial)"] + [str(k) for k in range(1, count)])
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("average return")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_adaptation_curves(results: Mapping[str, dict[str, Any]], path: Path, title: str) -> Path:
    """Average return (mean ± 95% interval) against gradient steps, one line per run.

    ``results``: ``{label: evaluate_rl(...)}``; the label of a MuMoMAML run says so,
    and its step 0 is "after modulation".
    """
    fig, ax = plt.subplots(figsize=(5, 3.8))
    _draw_adaptation(ax, results, title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_adaptation_panels(panels: Mapping[str, Mapping[str, dict[str, Any]]], path: Path) -> Path:
    """Figure 3a-c: one adaptation-curve panel per environment, ``{title: {label: evaluate_rl(...)}}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (title, results) in zip(axes[0], panels.items()):
        _draw_adaptation(ax, results, title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def step_title(step: int, modulated: bool) -> str:
    """A panel's title: step 0 is the modulated policy (MuMoMAML) or the initial one (MAML)."""
    if step == 0:
        return "after modulation" if modulated else "initial policy"
    return f"after {step} step{'s' if step > 1 else ''}"


def plot_trajectories(rollouts: Rollouts, distribution: GoalDistribution, path: Path, title: str,
                      episodes: int = 3) -> Path:
    """Figure 3d: each task's trajectories after modulation and after each gradient step, over the goal density.

    One panel per step; a colour per task; the goal of each task is a star.
    """
    steps = len(rollouts.steps)
    goals = rollouts.goals.cpu()
    positions = [e.positions[:, :episodes].cpu() for e in rollouts.steps]  # [T, E, H+1, 2]
    everything = torch.cat([goals, *[p.reshape(-1, 2) for p in positions]])
    low, high = (everything.min(0).values - 0.3).tolist(), (everything.max(0).values + 0.3).tolist()
    gx, gy = torch.meshgrid(torch.linspace(low[0], high[0], 120), torch.linspace(low[1], high[1], 120), indexing="xy")
    density = distribution.density(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)).view_as(gx)
    # Panels keep the plane's aspect, so the figure's height follows the extent (wide for bimodal navigation).
    panel_height = 3.3 * min(1.5, max(0.3, (high[1] - low[1]) / (high[0] - low[0])))
    fig, axes = plt.subplots(1, steps, figsize=(3.3 * steps, panel_height + 0.75), squeeze=False)
    colors = plt.cm.tab10(np.arange(goals.shape[0]) % 10)
    for k, ax in enumerate(axes[0]):
        ax.contourf(gx.numpy(), gy.numpy(), density.numpy(), levels=12, cmap="coolwarm", alpha=0.6)
        for t in range(goals.shape[0]):
            for e in range(positions[k].shape[1]):
                xy = positions[k][t, e].numpy()
                ax.plot(xy[:, 0], xy[:, 1], color=colors[t], lw=1, alpha=0.9)
            ax.plot(float(goals[t, 0]), float(goals[t, 1]), marker="*", ms=12, color=colors[t], mec="k")
        ax.set_title(step_title(k, rollouts.modulated_from == 0), fontsize=9)
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])
        ax.set_aspect("equal")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_progress(rollouts: Rollouts, quantity: str, dt: float, path: Path, title: str, episodes: int = 2) -> Path:
    """Half-cheetah: x-position (``quantity="position"``) or forward velocity (``"velocity"``) over time.

    One panel per step (after modulation, after each gradient step); a colour per
    task, ``episodes`` thin lines each, and the task's target as a dashed line.
    Velocities are ``(x_{t+1} - x_t) / dt`` from the recorded positions ``[T, E, H + 1, 1]``,
    the environment's own definition.
    """
    if quantity not in ("position", "velocity"):
        raise ValueError(f"quantity must be position or velocity, got {quantity!r}")
    steps = len(rollouts.steps)
    goals = rollouts.goals.cpu()[:, 0]
    fig, axes = plt.subplots(1, steps, figsize=(3.3 * steps, 3.2), squeeze=False, sharey=True)
    colors = plt.cm.tab10(np.arange(goals.shape[0]) % 10)
    for k, ax in enumerate(axes[0]):
        x = rollouts.steps[k].positions[:, :episodes, :, 0].cpu().double()  # [T, e, H + 1]
        values = x if quantity == "position" else (x[..., 1:] - x[..., :-1]) / dt
        time = np.arange(values.shape[-1]) * dt
        for t in range(goals.shape[0]):
            for e in range(values.shape[1]):
                ax.plot(time, values[t, e].numpy(), color=colors[t], lw=0.9, alpha=0.8)
            ax.axhline(float(goals[t]), color=colors[t], ls="--", lw=1)
        ax.set_title(step_title(k, rollouts.modulated_from == 0), fontsize=9)
        ax.set_xlabel("time (s)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("x-position (m)" if quantity == "position" else "forward velocity (m/s)")
    fig.suptitle(title + " (dashed: targets)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_return_curves(runs: Mapping[str, Path], path: Path, title: str, window: int = 10) -> Path | None:
    """Meta-training curves: the meta-batch's average return before (dashed) and after the inner steps (solid),
    as running medians of ``window`` logged values, one colour per run. None when no run logged anything."""

    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for i, (name, run_dir) in enumerate(runs.items()):
        if not (Path(run_dir) / "metrics.csv").exists():
            continue
        rows = read_metrics(run_dir)
        steps = sorted(k for k in rows[0] if k.startswith("return_step")) if rows else []
        if not steps:
            continue
        x = [r["iteration"] for r in rows]
        color = f"C{i}"
        ax.plot(x, running_median([r[steps[0]] for r in rows], window), ls="--", lw=1, color=color,
                label=f"{name}: before the inner steps")
        ax.plot(x, running_median([r[steps[-1]] for r in rows], window), lw=1.2, color=color,
                label=f"{name}: after {len(steps) - 1} inner step{'s' if len(steps) > 2 else ''}")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(f"average return of the meta-batch\n(running median of {window} logs)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
