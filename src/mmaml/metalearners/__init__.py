"""Meta-learners: MAML, Multi-MAML (oracle baseline) and MuMoMAML."""

from mmaml.metalearners.base import AdaptedModel, GradientMetaLearner, MetaOutput
from mmaml.metalearners.maml import MAML
from mmaml.metalearners.multi_maml import MultiMAML
from mmaml.metalearners.mumomaml import MuMoMAML

__all__ = ["GradientMetaLearner", "AdaptedModel", "MetaOutput", "MAML", "MultiMAML", "MuMoMAML"]
