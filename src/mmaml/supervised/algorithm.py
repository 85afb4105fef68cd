"""One supervised meta-training iteration (regression, image classification) for the trainer.

Adam on the mean post-adaptation query loss of a meta-batch, with optional
gradient-norm clipping. A meta-batch whose loss or gradient is not finite (an
inner loop that diverged on some task) leaves the parameters and optimizer
untouched: the step is skipped, and counted in ``metrics.csv``.

Distributed (see :mod:`mmaml.engine.distributed`): each rank adapts its share
of the meta-batch, and the loss and meta-gradients are averaged over the ranks
before the (identical) clipping and Adam step.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from mmaml.metalearners import GradientMetaLearner
from mmaml.supervised.config import SupervisedConfig
from mmaml.engine.distributed import Distributed, iteration_generator


class SupervisedAlgorithm:
    """Meta-training of ``model`` on the task distribution ``tasks`` (both built from ``config`` by its kind,
    :mod:`mmaml.kinds`); ``checkpoint_extras(config)``: what a checkpoint keeps besides."""

    columns = ("loss", "grad_norm", "skipped_steps")
    renamed_columns: dict[str, str] = {}
    divergence_hint = "lower meta_lr (or clip the inner gradients)"

    def __init__(self, config: SupervisedConfig, device: torch.device, generator: torch.Generator,
                 dist: Distributed, tasks, model: GradientMetaLearner,
                 checkpoint_extras: Callable[[SupervisedConfig], dict] | None = None):
        self.config = config
        self.device = device
        self.generator = generator
        self.dist = dist
        self.iteration = 0  # iterations done before the next step (the trainer keeps it current)
        if dist.active:
            dist.shard(config.meta_batch_size)  # refuse a meta-batch that does not divide now, not mid-run
        self.tasks = tasks
        self.model = model.to(device)
        self.checkpoint_extras = checkpoint_extras
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.meta_lr)

    def step(self) -> dict[str, float]:
        """One meta-iteration: ``{"loss", "grad_norm"}`` (pre-clip norm), with ``"nonfinite": True`` when skipped."""
        config, dist = self.config, self.dist
        generator = (iteration_generator(config.seed, self.iteration) if config.task_rng == "per_iteration"
                     else self.generator)
        batch = self.tasks.sample(config.meta_batch_size, generator)
        if dist.active:
            batch = batch.select(dist.shard(config.meta_batch_size))
        out = self.model(batch.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        local = float(out.loss.detach())
        if math.isfinite(local):
            out.loss.backward()
        loss = dist.mean(local)  # every rank decides alike whether to skip
        if not math.isfinite(loss):
            self.optimizer.zero_grad(set_to_none=True)
            return {"loss": loss, "grad_norm": float("nan"), "nonfinite": True}
        dist.average_gradients([p for p in self.model.parameters() if p.requires_grad])
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
        """Adam's state, and what the run's kind keeps besides (image runs: how each data set's files became
        pixels, which ``predict`` reads)."""
        extras = self.checkpoint_extras(self.config) if self.checkpoint_extras is not None else {}
        return {"optimizer": self.optimizer.state_dict(), **extras}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
