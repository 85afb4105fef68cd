"""Build a meta-learner and its task distribution from a :class:`RegressionConfig`."""

from __future__ import annotations

import torch

from mmaml.core.learner import Learner
from mmaml.core.task_encoder import RecurrentTaskEncoder
from mmaml.metalearners import MAML, GradientMetaLearner, MultiMAML, MuMoMAML
from mmaml.models.mlp import RegressionMLP
from mmaml.tasks.regression import RegressionTasks
from mmaml.training.config import RegressionConfig


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_tasks(config: RegressionConfig) -> RegressionTasks:
    return RegressionTasks(config.modes, config.num_support, config.num_query, config.noise_std)


def build_metalearner(config: RegressionConfig) -> GradientMetaLearner:
    """The meta-learner described by ``config`` (parameters freshly initialised)."""

    def mlp() -> RegressionMLP:
        return RegressionMLP(1, config.hidden_sizes, 1, config.bias_transformation, config.weight_init_std)

    inner = dict(
        inner_lr=config.inner_lr,
        inner_steps=config.inner_steps,
        inner_grad_clip=config.inner_grad_clip,
        first_order=config.first_order,
    )
    if config.method == "maml":
        return MAML(Learner(mlp()), **inner)
    if config.method == "multi_maml":
        return MultiMAML([Learner(mlp()) for _ in config.modes], **inner)
    learner = Learner(mlp(), modulate=[f"hidden.{i}" for i in config.modulated_layers])
    encoder = RecurrentTaskEncoder(2, config.encoder_hidden, config.encoder_layers, config.encoder_cell)
    return MuMoMAML(learner, encoder, config.modulation, **inner)
