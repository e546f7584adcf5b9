"""recbole_mml's models: backbones over one shared contrastive base (``ContrastiveRecommender``)."""

from recbole_mml import compat

compat.apply()  # importing a model is an entry point: RecBole's base classes run on today's libraries
