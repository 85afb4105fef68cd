"""t-SNE of task embeddings, coloured by mode (the paper's Figures 2c and 4)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def plot_embedding_tsne(embedding: torch.Tensor, mode: torch.Tensor, mode_names, path: Path, title: str) -> Path:
    """t-SNE of task embeddings ``[n, E]`` coloured by ``mode [n]``."""
    from sklearn.manifold import TSNE

    emb = embedding.detach().cpu().numpy()
    xy = TSNE(n_components=2, perplexity=min(30, len(emb) - 1), init="pca", random_state=0).fit_transform(emb)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    mode = mode.cpu().numpy()
    for m, name in enumerate(mode_names):
        sel = mode == m
        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, alpha=0.8, label=name)
    ax.legend(fontsize=8, markerscale=2)
    ax.set_title(textwrap.fill(title, 48), fontsize=10)  # wrapped: a long title would run off the figure
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
