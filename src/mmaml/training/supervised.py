"""One supervised meta-training iteration (regression, image classification) for the trainer.

Adam on the mean post-adaptation query loss of a meta-batch, with optional
gradient-norm clipping. A meta-batch whose loss or gradient is not finite (an
inner loop that diverged on some task) leaves the parameters and optimizer
untouched: the step is skipped, and counted in ``metrics.csv``.
"""

from __future__ import annotations

import math

import torch

from mmaml.metalearners import GradientMetaLearner
from mmaml.training.builder import build_metalearner, build_tasks
from mmaml.training.config import BaseConfig


class SupervisedAlgorithm:
    """Meta-training of a :class:`GradientMetaLearner` on the task distribution of ``config``."""

    columns = ("loss", "grad_norm", "skipped_steps")

    def __init__(self, config: BaseConfig, device: torch.device, generator: torch.Generator):
        self.config = config
        self.device = device
        self.generator = generator
        self.tasks = build_tasks(config)
        self.model: GradientMetaLearner = build_metalearner(config).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.meta_lr)

    def step(self) -> dict[str, float]:
        """One meta-iteration: ``{"loss", "grad_norm"}`` (pre-clip norm), with ``"nonfinite": True`` when skipped."""
        config = self.config
        batch = self.tasks.sample(config.meta_batch_size, self.generator).to(self.device)
        out = self.model(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss = float(out.loss.detach())
        if not math.isfinite(loss):
            return {"loss": loss, "grad_norm": float("nan"), "nonfinite": True}
        out.loss.backward()
        clip = config.grad_norm_clip if config.grad_norm_clip is not None else float("inf")
        groups = self.model.parameter_groups() if config.grad_clip_groups == "per_group" else [self.model.parameters()]
        norms = [torch.nn.utils.clip_grad_norm_([p for p in g if p.grad is not None], clip) for g in groups]
        norm = float(torch.stack(norms).square().sum().sqrt())  # the norm over everything, before clipping
        if not math.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return {"loss": loss, "grad_norm": norm, "nonfinite": True}
        self.optimizer.step()
        return {"loss": loss, "grad_norm": norm}

    def summarize(self, window: list[dict[str, float]]) -> dict[str, float]:
        """Mean loss and norm over the finite steps of the window, and how many were skipped."""
        done = [w for w in window if math.isfinite(w["loss"]) and math.isfinite(w["grad_norm"])]
        return {
            "loss": sum(w["loss"] for w in done) / len(done) if done else float("nan"),
            "grad_norm": sum(w["grad_norm"] for w in done) / len(done) if done else float("nan"),
            "skipped_steps": len(window) - len(done),
        }

    def progress(self, summary: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{summary['loss']:.4f}"}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
