"""Products with a graph's symmetric normalised adjacency, for MMLLightGCN and RecBole's LightGCN.

On one CPU thread a product with Gowalla's adjacency (70,841 nodes, 1.46 M entries) takes 0.41 s
as the unsorted COO tensor RecBole's LightGCN builds and 0.19 s as CSR; torch's backward of either
goes through the transpose, while a symmetric matrix is its own transpose, so its backward is one
more forward product (:class:`SymmetricSparseProduct`). MMLLightGCN always uses it; RecBole's
LightGCN with ``csr_adjacency: True`` (:mod:`recbole_mml.fast_paths`).
"""

import numpy as np
import scipy.sparse as sp
import torch

from recbole_mml.errors import ConfigError


def normalized_adjacency(interactions, n_users, n_items):
    """``D^-1/2 A D^-1/2`` of the user-item bipartite graph, as a torch sparse CSR tensor."""
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


class SymmetricSparseProduct(torch.autograd.Function):
    """``matrix @ dense`` for a symmetric sparse ``matrix``, whose gradient is again ``matrix @ grad``."""

    @staticmethod
    def forward(ctx, matrix, dense):
        ctx.matrix = matrix
        return torch.sparse.mm(matrix, dense)

    @staticmethod
    def backward(ctx, grad):
        return None, torch.sparse.mm(ctx.matrix, grad)


def symmetric_csr(matrix):
    """``matrix`` (a sparse COO tensor) as CSR, refused with a ``ConfigError`` unless it equals its
    transpose exactly (the backward of :class:`SymmetricSparseProduct` relies on it)."""
    matrix = matrix.coalesce()
    transpose = matrix.t().coalesce()
    if not (torch.equal(matrix.indices(), transpose.indices()) and torch.equal(matrix.values(), transpose.values())):
        raise ConfigError("csr_adjacency: the model's adjacency is not symmetric; expected the symmetric "
                          "normalised adjacency of a user-item graph")
    return matrix.to_sparse_csr()


class SymmetricAdjacency:
    """Stands in for a model's symmetric sparse adjacency: ``torch.sparse.mm(adjacency, x)`` on it is
    the CSR product with the symmetric backward; any other use is refused, naming the operation.

    Constant data, so a copy of the model (RecBole's FLOPs count deep-copies it) shares it."""

    def __init__(self, csr):
        self.csr = csr

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.sparse.mm and len(args) == 2 and not kwargs and isinstance(args[0], cls):
            return SymmetricSparseProduct.apply(args[0].csr, args[1])
        raise TypeError(f"csr_adjacency: the adjacency supports torch.sparse.mm(adjacency, x) only, "
                        f"not {getattr(func, '__name__', func)}")

    def __deepcopy__(self, memo):
        return self
