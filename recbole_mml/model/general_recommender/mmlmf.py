"""MMLMF: matrix factorisation scored by cosine, trained with the Multi-Margin Loss.

Reference: Ozsoy, "Multi-Margin Cosine Loss: Proposal and Application in Recommender Systems",
arXiv 2405.04614 (MF backbone, as in SimpleX's MF-CCL).
"""

from recbole.model.init import xavier_normal_initialization

from recbole_mml.model.abstract_recommender import ContrastiveRecommender


class MMLMF(ContrastiveRecommender):
    """User and item embedding tables."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.user_embedding = self.embedding(self.n_users, self.embedding_size)
        self.item_embedding = self.embedding(self.n_items, self.embedding_size)
        self.apply(xavier_normal_initialization)

    def encode(self, users):
        return self.user_embedding(users), self.item_embedding.weight
