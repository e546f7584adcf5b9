"""MMLLightGCN: LightGCN propagation scored by cosine, trained with the Multi-Margin Loss.

References: He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020; Ozsoy, arXiv 2405.04614.
"""

import torch
from torch import nn

from recbole.model.init import xavier_uniform_initialization

from recbole_mml.graph import SymmetricSparseProduct, normalized_adjacency
from recbole_mml.model.abstract_recommender import ContrastiveRecommender


CSR_PARTS = ("adjacency_rows", "adjacency_cols", "adjacency_values")


class MMLLightGCN(ContrastiveRecommender):
    """Embeddings averaged over ``n_layers`` rounds of normalised-graph propagation.

    Propagation reads every row, so the tables keep dense gradients under any learner
    (``sparse_adam`` then updates them with Adam).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.n_layers = config["n_layers"]
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        adjacency = normalized_adjacency(dataset.inter_matrix(form="coo"), self.n_users, self.n_items)
        # Kept as its three dense parts: a CSR buffer would follow .to() but not copy.deepcopy
        for part, tensor in zip(CSR_PARTS, (adjacency.crow_indices(), adjacency.col_indices(), adjacency.values())):
            self.register_buffer(part, tensor.to(self.device), persistent=False)
        self.apply(xavier_uniform_initialization)

    @property
    def adjacency(self):
        """The normalised adjacency as a CSR tensor over the buffers (a view, no copy).

        The buffers came from a CSR tensor torch built, so its invariants are not checked again per batch."""
        n = self.n_users + self.n_items
        return torch.sparse_csr_tensor(*(getattr(self, part) for part in CSR_PARTS), size=(n, n),
                                       check_invariants=False)

    def propagate(self):
        """``(user table, item table)`` after propagation."""
        layer = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        total = layer
        adjacency = self.adjacency
        for _ in range(self.n_layers):
            layer = SymmetricSparseProduct.apply(adjacency, layer)
            total = total + layer
        return torch.split(total / (self.n_layers + 1), [self.n_users, self.n_items])

    def encode(self, users):
        user_table, item_table = self.cached("propagated", self.propagate)
        return user_table[users], item_table
