"""The README's Python API snippet runs as printed, and its training does what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_snippet_runs_and_trains():
    text = README.read_text().split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 15
    printed = io.StringIO()
    namespace: dict = {}
    torch.manual_seed(0)
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), namespace)
    # the printed shape is the one the snippet's comment promises
    promised = re.search(r"print\(.*\)\s+# (.+)", code).group(1).strip()
    assert printed.getvalue().strip() == promised
    # and the training lowered the loss: the trained model against a fresh one, on the same tasks
    import mmaml
    from torch import nn

    model, tasks = namespace["model"], namespace["tasks"]
    batch = tasks.sample(200, torch.Generator().manual_seed(123))
    net = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1))
    fresh = mmaml.MuMoMAML(mmaml.Learner(net, modulate=["0", "2"]), mmaml.RecurrentTaskEncoder(input_dim=2),
                           modulation="film", inner_lr=0.01, inner_steps=2)
    with torch.no_grad():
        trained_loss, fresh_loss = float(model(batch).loss), float(fresh(batch).loss)
    assert trained_loss < 0.7 * fresh_loss
