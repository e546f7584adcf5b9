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
    """``D^-1/2 A D^-1/2`` of the user-item bipartite graph, as a torch sparse CSR tensor.

    CSR rather than COO: on one CPU thread its product is 2-3x faster on Gowalla's graph."""
    inter = interactions.tocoo()
    rows = np.concatenate([inter.row, inter.col + n_users])
    cols = np.concatenate([inter.col + n_users, inter.row])
    n = n_users + n_items
    adj = sp.coo_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n)).tocsr()
    adj.data[:] = 1.0  # duplicate interactions count once
    degree = np.asarray(adj.sum(axis=1)).ravel() + 1e-7
    d_inv_sqrt = sp.diags(np.power(degree, -0.5).astype(np.float32))
    norm = (d_inv_sqrt @ adj @ d_inv_sqrt).tocsr().astype(np.float32)
    norm.sort_indices()
    return torch.sparse_csr_tensor(torch.from_numpy(norm.indptr.astype(np.int64)),
                                   torch.from_numpy(norm.indices.astype(np.int64)),
                                   torch.from_numpy(norm.data), size=norm.shape, check_invariants=True)


CSR_PARTS = ("adjacency_rows", "adjacency_cols", "adjacency_values")


class SymmetricSparseProduct(torch.autograd.Function):
    """``matrix @ dense`` for a symmetric sparse ``matrix``, whose gradient is again ``matrix @ grad``.

    torch's own backward for a sparse CSR product goes through the transpose and costs 2-3x the
    forward; symmetry makes it one more forward product."""

    @staticmethod
    def forward(ctx, matrix, dense):
        ctx.matrix = matrix
        return torch.sparse.mm(matrix, dense)

    @staticmethod
    def backward(ctx, grad):
        return None, torch.sparse.mm(ctx.matrix, grad)


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
