"""recbole_mml's models: backbones over one shared contrastive base (``ContrastiveRecommender``)."""
