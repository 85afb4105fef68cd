"""MAML (Finn et al., 2017): one shared initialisation adapted by gradient steps.

Example::

    learner = Learner(RegressionMLP(bias_transformation=20))
    maml = MAML(learner, inner_lr=0.001, inner_steps=5)
    out = maml(batch)            # batch: TaskBatch of T tasks
    out.loss.backward()          # second-order meta-gradient w.r.t. theta
"""

from mmaml.metalearners.base import GradientMetaLearner


class MAML(GradientMetaLearner):
    """Model-agnostic meta-learning; every task starts from the same theta."""
