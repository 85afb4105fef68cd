"""Published numbers of the paper's Table 1 (multimodal 5-shot regression, query MSE)."""

from __future__ import annotations

PAPER_ITERATIONS = 70000

# (modes, row) -> (post modulation, post adaptation)
TABLE1: dict[tuple[int, str], tuple[float, float]] = {
    (2, "maml"): (15.9255, 1.0852),
    (2, "multi-maml"): (16.2894, 0.4330),
    (2, "softmax"): (3.9140, 0.4795),
    (2, "sigmoid"): (1.4992, 0.3414),
    (2, "film"): (1.7094, 0.3125),
    (3, "maml"): (12.5994, 1.1633),
    (3, "multi-maml"): (12.3742, 0.7791),
    (3, "softmax"): (0.6889, 0.4884),
    (3, "sigmoid"): (2.4047, 0.4414),
    (3, "film"): (1.9234, 0.4048),
}

ROW_LABELS = {
    "maml": "MAML",
    "multi-maml": "Multi-MAML (GT)",
    "softmax": "MuMoMAML softmax",
    "sigmoid": "MuMoMAML sigmoid",
    "film": "MuMoMAML FiLM",
}
