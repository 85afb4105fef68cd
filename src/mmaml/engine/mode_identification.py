"""How well task embeddings identify the mode: the paper's central claim, measured rather than pictured.

Given the embeddings ``[n, E]`` of ``n`` test tasks and their true modes ``[n]``:

* **k-NN accuracy**: a k-nearest-neighbour classifier (Euclidean, ``k = 5``) fitted on
  one half of the tasks (a seeded random split, stratified by mode) predicts the
  mode of the other half; reported with the chance level (the most frequent mode's
  share of the scored half) and the per-mode confusion (row: true mode, column:
  predicted, fractions of the row). Where modes genuinely overlap (a line and a
  flat quadratic can be the same function on five points) the confusion says which.
* **linear accuracy**: a logistic-regression probe (features standardised) fitted and
  scored on the same halves. k-NN votes by distance over all dimensions, so a mode
  carried by a few directions of a 64-dimensional embedding, under noise in the rest,
  can hide from it; a linear probe finds such a direction. k-NN near chance with the
  linear probe well above says the embeddings carry the mode weakly, in few directions.
* **silhouette**: scikit-learn's silhouette score of the true modes in embedding
  space (1: tight, well-separated modes; about 0: overlapping; negative: mixed).

Both use at most ``MAX_TASKS`` tasks (a seeded subsample, stratified by mode), since
the silhouette's cost grows with the square of the number of tasks and a few
thousand tasks pin both numbers down to about a percent.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from torch import Tensor

K_NEIGHBOURS = 5
MAX_TASKS = 4000


def mode_identification(embedding: Tensor, mode: Tensor, mode_names: Sequence[str], k: int = K_NEIGHBOURS,
                        seed: int = 0) -> dict[str, Any]:
    """k-NN and linear-probe mode accuracy (fit on half, score on the other half), chance, confusion, silhouette.

    Args:
        embedding: ``[n, E]`` task embeddings.
        mode: ``[n]`` true mode index of each task.
        mode_names: the names of the modes, indexed by mode.
        k: neighbours of the classifier (capped at the size of the fitted half).
        seed: of the split.

    Returns:
        ``{"knn_accuracy", "linear_accuracy", "chance", "k", "num_fit", "num_scored", "silhouette",
        "confusion"}`` (``confusion`` is the k-NN's);
        ``confusion[true][predicted]`` is the fraction of the true mode's scored tasks.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = embedding.detach().double().cpu().numpy()
    y = mode.detach().cpu().numpy().astype(int)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"need embeddings [n, E] and modes [n], got {x.shape} and {y.shape}")
    present = np.unique(y)
    if len(present) < 2 or len(y) < 4:
        raise ValueError("mode identification needs at least 4 tasks of at least 2 modes")
    counts = np.bincount(y)
    stratify = y if counts[present].min() >= 2 else None
    if len(y) > MAX_TASKS:
        keep = _stratified_subsample(y, MAX_TASKS, seed)
        x, y = x[keep], y[keep]
        stratify = y if stratify is not None else None
    fit_x, score_x, fit_y, score_y = train_test_split(x, y, test_size=0.5, random_state=seed, stratify=stratify)
    neighbours = min(k, len(fit_y))
    predicted = KNeighborsClassifier(n_neighbors=neighbours).fit(fit_x, fit_y).predict(score_x)
    if len(np.unique(fit_y)) > 1:
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(fit_x, fit_y)
        linear = float(np.mean(probe.predict(score_x) == score_y))
    else:  # a split too small to hold two modes on the fitted side
        linear = float(np.mean(score_y == fit_y[0]))
    confusion: dict[str, dict[str, float]] = {}
    for m in np.unique(score_y):
        row = predicted[score_y == m]
        confusion[mode_names[m]] = {mode_names[p]: float(np.mean(row == p)) for p in present}
    return {
        "knn_accuracy": float(np.mean(predicted == score_y)),
        "linear_accuracy": linear,
        "chance": float(np.bincount(score_y).max() / len(score_y)),
        "k": int(neighbours),
        "num_fit": int(len(fit_y)),
        "num_scored": int(len(score_y)),
        "silhouette": float(silhouette_score(x, y)),
        "confusion": confusion,
    }


def _stratified_subsample(y: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of about ``size`` of the tasks ``y``: each mode's share kept (rounded down), at least 2 of
    each mode that has them, drawn without replacement by a generator of ``seed``."""
    rng = np.random.default_rng(seed)
    keep = []
    for m in np.unique(y):
        idx = np.flatnonzero(y == m)
        take = max(min(2, len(idx)), size * len(idx) // len(y))
        keep.append(rng.choice(idx, size=take, replace=False))
    return np.sort(np.concatenate(keep))


def format_mode_identification(result: dict[str, Any]) -> str:
    """One line for ``mmaml eval``."""
    return (f"mode identification from the task embeddings: {result['k']}-NN accuracy "
            f"{100 * result['knn_accuracy']:.1f}%, linear probe {100 * result['linear_accuracy']:.1f}% on "
            f"{result['num_scored']} tasks (chance {100 * result['chance']:.1f}%), silhouette "
            f"{result['silhouette']:.3f}")
