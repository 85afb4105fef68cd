"""Figure layout: titles stay inside the figure, and trajectory panels fill it rather than floating in white space."""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
import torch

from mmaml.plotting import figure3, tsne
from mmaml.rl.envs.goals import bimodal_navigation_goals


@pytest.fixture
def kept_figures(monkeypatch):
    """The figures the plotting functions close, kept open for inspection."""
    kept, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    close("all")


def test_a_long_tsne_title_stays_inside_the_figure(tmp_path, kept_figures):
    generator = torch.Generator().manual_seed(0)
    embedding = torch.randn(40, 8, generator=generator)
    mode = torch.arange(40) % 2
    title = "t-SNE of task embeddings, navigation-bimodal, 500 meta-iterations"
    tsne.plot_embedding_tsne(embedding, mode, ("left", "right"), tmp_path / "t.png", title)
    fig = kept_figures[-1]
    renderer = fig.canvas.get_renderer()
    box = fig.axes[0].title.get_window_extent(renderer)
    width = fig.get_size_inches()[0] * fig.dpi
    assert box.x0 >= 0 and box.x1 <= width
    assert fig.axes[0].title.get_text().replace("\n", " ") == title


def test_navigation_trajectory_panels_fill_the_figure_height(tmp_path, kept_figures):
    distribution = bimodal_navigation_goals()
    goals = torch.tensor([[-1.0, 0.2], [1.0, -0.1]])
    line = torch.linspace(0, 1, 11)[:, None]
    positions = torch.stack([torch.cat([goal[0] * line, goal[1] * line], dim=1) for goal in goals])  # [2, 11, 2]
    steps = [SimpleNamespace(positions=positions[:, None].expand(2, 3, 11, 2)) for _ in range(3)]
    rollouts = SimpleNamespace(goals=goals, steps=steps, modulated_from=0)
    figure3.plot_trajectories(rollouts, distribution, tmp_path / "t.png", "navigation")
    fig = kept_figures[-1]
    fig.canvas.draw()
    heights = [ax.get_position().height for ax in fig.axes if ax.get_title()]
    assert len(heights) == 3
    # The plane is 2.6 wide and 0.9 high here: with a fixed 3.4-inch figure the panels took a third of its height.
    assert min(heights) > 0.45, heights
