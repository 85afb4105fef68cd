"""mmaml: multimodal model-agnostic meta-learning (MuMoMAML).

The public API::

    from mmaml import Learner, MuMoMAML, RecurrentTaskEncoder, TaskBatch

    learner = Learner(my_net, modulate=["layer1", "layer2"])   # any nn.Module
    model = MuMoMAML(learner, RecurrentTaskEncoder(input_dim=2), modulation="film",
                     inner_lr=0.001, inner_steps=5)
    loss = model(task_batch).loss                                # batched over tasks

    trained = mmaml.load("runs/film")                            # a run folder of `mmaml train`
    predict = trained.adapt(support_x, support_y)                # [T, K, ...] -> a predictor
    query_pred = predict(query_x)                                # [T, Q, ...]
"""

from mmaml.core.inner_loop import adapt
from mmaml.core.learner import Learner, ModulationSite
from mmaml.core.modulation import MODULATION_KINDS, modulate
from mmaml.core.modulation_network import ModulationNetwork
from mmaml.core.task_encoder import RecurrentTaskEncoder
from mmaml.metalearners import MAML, AdaptedModel, GradientMetaLearner, MetaOutput, MultiMAML, MuMoMAML
from mmaml.metalearners.losses import cross_entropy_per_task, mse_per_task
from mmaml.models.mlp import RegressionMLP
from mmaml.tasks.batch import TaskBatch
from mmaml.tasks.regression import RegressionTasks
from mmaml.runs import load

__version__ = "0.1.0"

__all__ = [
    "adapt",
    "Learner",
    "ModulationSite",
    "MODULATION_KINDS",
    "modulate",
    "ModulationNetwork",
    "RecurrentTaskEncoder",
    "GradientMetaLearner",
    "AdaptedModel",
    "load",
    "MetaOutput",
    "MAML",
    "MultiMAML",
    "MuMoMAML",
    "mse_per_task",
    "cross_entropy_per_task",
    "RegressionMLP",
    "TaskBatch",
    "RegressionTasks",
]
