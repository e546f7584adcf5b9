"""General recommenders, one class per file named after the class in lower case (found by the registry)."""

from recbole_mml.model.general_recommender.mmllightgcn import MMLLightGCN
from recbole_mml.model.general_recommender.mmlmf import MMLMF
from recbole_mml.model.general_recommender.mmlsimplex import MMLSimpleX

__all__ = ["MMLMF", "MMLSimpleX", "MMLLightGCN"]
