"""Build a meta-learner and its task distribution from a run config (regression or classification)."""

from __future__ import annotations

import torch

from mmaml.core.learner import Learner
from mmaml.core.task_encoder import RecurrentTaskEncoder
from mmaml.metalearners import MAML, GradientMetaLearner, MultiMAML, MuMoMAML
from mmaml.metalearners.losses import cross_entropy_per_task, mse_per_task
from mmaml.models.conv import ConvLearner, ConvTaskEncoder
from mmaml.models.mlp import RegressionMLP
from mmaml.tasks.regression import RegressionTasks
from mmaml.training.config import BaseConfig, ClassificationConfig, RegressionConfig


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_tasks(config: BaseConfig, split: str = "train"):
    """The task distribution: fresh functions for regression; ``split``'s classes for images."""
    if isinstance(config, ClassificationConfig):
        from mmaml.data.registry import DATASETS, load_split
        from mmaml.tasks.classification import ImageClassificationTasks

        datasets = [
            load_split(name, split, config.image_size, config.data_dir, config.cache_dir, config.images_per_class)
            for name in config.datasets
        ]
        return ImageClassificationTasks(datasets, config.num_ways, config.num_shots, config.num_query,
                                        rotate=[DATASETS[n].rotate for n in config.datasets], names=config.datasets)
    return RegressionTasks(config.modes, config.num_support, config.num_query, config.noise_std)


def build_metalearner(config: BaseConfig) -> GradientMetaLearner:
    """The meta-learner described by ``config`` (parameters freshly initialised).

    For an RL config, the :class:`~mmaml.rl.metalearner.PolicyMetaLearner`.
    """
    if config.task == "rl":
        from mmaml.rl.builder import build_policy_metalearner

        return build_policy_metalearner(config)
    inner = dict(
        inner_lr=config.inner_lr,
        inner_steps=config.inner_steps,
        inner_grad_clip=config.inner_grad_clip,
        first_order=config.first_order,
    )
    if isinstance(config, ClassificationConfig):
        def net() -> ConvLearner:
            return ConvLearner(config.num_ways, config.channels)

        inner["loss_fn"] = cross_entropy_per_task
        sites = net().modulation_sites()
        if config.modulated_layers is not None:
            sites = [sites[i] for i in config.modulated_layers]
        encoder = lambda: ConvTaskEncoder(config.channels, config.embedding_dim)  # noqa: E731
    else:
        assert isinstance(config, RegressionConfig)

        def net() -> RegressionMLP:
            return RegressionMLP(1, config.hidden_sizes, 1, config.bias_transformation, config.weight_init_std)

        inner["loss_fn"] = mse_per_task
        sites = [f"hidden.{i}" for i in config.modulated_hidden_layers]
        encoder = lambda: RecurrentTaskEncoder(  # noqa: E731
            2, config.encoder_hidden, config.encoder_layers, config.encoder_cell)
    if config.method == "maml":
        return MAML(Learner(net()), **inner)
    if config.method == "multi_maml":
        return MultiMAML([Learner(net()) for _ in config.mode_names], **inner)
    return MuMoMAML(Learner(net(), modulate=sites), encoder(), config.modulation, config.modulation_init, **inner)
