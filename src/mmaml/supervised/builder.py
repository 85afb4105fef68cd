"""Build the meta-learner and the task distribution of a regression or image-classification run config."""

from __future__ import annotations

from typing import Callable

from torch import nn

from mmaml.core.learner import Learner
from mmaml.core.task_encoder import RecurrentTaskEncoder
from mmaml.data.registry import DATASETS, load_split
from mmaml.metalearners import MAML, GradientMetaLearner, MultiMAML, MuMoMAML
from mmaml.metalearners.losses import cross_entropy_per_task, mse_per_task
from mmaml.models.conv import ConvLearner, ConvTaskEncoder
from mmaml.models.mlp import RegressionMLP
from mmaml.tasks.classification import ImageClassificationTasks
from mmaml.tasks.regression import RegressionTasks
from mmaml.supervised.config import ClassificationConfig, RegressionConfig, SupervisedConfig


def regression_tasks(config: RegressionConfig, split: str = "test") -> RegressionTasks:
    """Fresh regression functions of ``config``'s modes (drawn anew, so every ``split`` is the same)."""
    return RegressionTasks(config.modes, config.num_support, config.num_query, config.noise_std)


def image_tasks(config: ClassificationConfig, split: str = "train") -> ImageClassificationTasks:
    """Few-shot tasks from ``split``'s classes of each of ``config``'s data sets."""
    datasets = [load_split(name, split, config.image_size, config.data_dir, config.cache_dir, config.images_per_class)
                for name in config.datasets]
    return ImageClassificationTasks(datasets, config.num_ways, config.num_shots, config.num_query,
                                    rotate=[DATASETS[n].rotate for n in config.datasets], names=config.datasets)


def regression_metalearner(config: RegressionConfig) -> GradientMetaLearner:
    """The regression meta-learner of ``config``: an MLP learner, MSE, an LSTM/GRU encoder of (x, y) pairs."""
    def net() -> RegressionMLP:
        return RegressionMLP(1, config.hidden_sizes, 1, config.bias_transformation, config.weight_init_std)

    return assemble_metalearner(config, net, mse_per_task, [f"hidden.{i}" for i in config.modulated_hidden_layers],
                                lambda: RecurrentTaskEncoder(2, config.encoder_hidden, config.encoder_layers,
                                                             config.encoder_cell))


def image_metalearner(config: ClassificationConfig) -> GradientMetaLearner:
    """The image meta-learner of ``config``: a conv learner, cross-entropy, a conv encoder of the support set."""
    def net() -> ConvLearner:
        return ConvLearner(config.num_ways, config.channels)

    sites = net().modulation_sites()
    if config.modulated_layers is not None:
        sites = [sites[i] for i in config.modulated_layers]
    return assemble_metalearner(config, net, cross_entropy_per_task, sites,
                                lambda: ConvTaskEncoder(config.channels, config.embedding_dim))


def assemble_metalearner(config: SupervisedConfig, net: Callable[[], nn.Module], loss_fn, sites: list[str],
                         encoder: Callable[[], nn.Module]) -> GradientMetaLearner:
    """``config.method``'s meta-learner over fresh learners ``net()`` (parameters freshly initialised):
    MAML, Multi-MAML (one learner per mode) or MuMoMAML (``sites`` modulated from ``encoder()``)."""
    inner = dict(inner_lr=config.inner_lr, inner_steps=config.inner_steps, inner_grad_clip=config.inner_grad_clip,
                 first_order=config.first_order, loss_fn=loss_fn)
    if config.method == "maml":
        return MAML(Learner(net()), **inner)
    if config.method == "multi_maml":
        return MultiMAML([Learner(net()) for _ in config.mode_names], **inner)
    return MuMoMAML(Learner(net(), modulate=sites), encoder(), config.modulation, config.modulation_init, **inner)
