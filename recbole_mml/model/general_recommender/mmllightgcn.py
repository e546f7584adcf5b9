"""MMLLightGCN: LightGCN propagation scored by cosine, trained with the Multi-Margin Loss.

References: He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020; Ozsoy, arXiv 2405.04614.
"""

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recbole.model.init import xavier_uniform_initialization

from recbole_mml.model.abstract_recommender import ContrastiveRecommender


def normalized_adjacency(interactions, n_users, n_items):
    """``D^-1/2 A D^-1/2`` of the user-item bipartite graph, as a coalesced torch sparse COO tensor."""
    inter = interactions.tocoo()
    rows = np.concatenate([inter.row, inter.col + n_users])
    cols = np.concatenate([inter.col + n_users, inter.row])
    n = n_users + n_items
    adj = sp.coo_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n)).tocsr()
    adj.data[:] = 1.0  # duplicate interactions count once
    degree = np.asarray(adj.sum(axis=1)).ravel() + 1e-7
    d_inv_sqrt = sp.diags(np.power(degree, -0.5).astype(np.float32))
    norm = (d_inv_sqrt @ adj @ d_inv_sqrt).tocoo().astype(np.float32)
    indices = torch.from_numpy(np.vstack([norm.row, norm.col]).astype(np.int64))
    return torch.sparse_coo_tensor(indices, torch.from_numpy(norm.data), size=norm.shape, check_invariants=True).coalesce()


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
        self.register_buffer("adjacency", adjacency.to(self.device), persistent=False)
        self.apply(xavier_uniform_initialization)

    def propagate(self):
        """``(user table, item table)`` after propagation."""
        layer = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        total = layer
        for _ in range(self.n_layers):
            layer = torch.sparse.mm(self.adjacency, layer)
            total = total + layer
        return torch.split(total / (self.n_layers + 1), [self.n_users, self.n_items])

    def encode(self, users):
        user_table, item_table = self.cached("propagated", self.propagate)
        return user_table[users], item_table
