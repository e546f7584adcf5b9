"""Products with a symmetric normalised adjacency (MMLLightGCN's, and RecBole's LightGCN's with
``csr_adjacency: True``): dense algebra's values and gradients, and nothing else."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recbole_mml.errors import ConfigError
from recbole_mml.graph import SymmetricAdjacency, SymmetricSparseProduct, normalized_adjacency, symmetric_csr


def test_graph_propagation_and_its_gradient_match_dense_math():
    """The CSR adjacency and the product's symmetric backward give what dense float64 algebra gives,
    with a repeated interaction counted once."""
    n_users, n_items = 4, 5
    rows, cols = np.array([0, 0, 1, 2, 2, 3, 3, 3]), np.array([1, 1, 0, 2, 4, 0, 3, 4])  # (0, 1) twice
    matrix = normalized_adjacency(sp.coo_matrix((np.ones(8), (rows, cols)), shape=(n_users, n_items)), n_users, n_items)
    bipartite = np.zeros((9, 9))
    bipartite[rows, cols + n_users] = bipartite[cols + n_users, rows] = 1.0
    inv_sqrt = bipartite.sum(1) ** -0.5
    dense = torch.tensor(bipartite * inv_sqrt[:, None] * inv_sqrt[None, :])
    torch.testing.assert_close(matrix.to_dense().double(), dense, rtol=1e-6, atol=1e-6)

    x = torch.randn(9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    weights = torch.randn(9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = []
    matrix = matrix.to(torch.float64)  # the same float32 entries, so the products below agree to float64
    for product in (lambda v: SymmetricSparseProduct.apply(matrix, v), lambda v: matrix.to_dense() @ v):
        leaf = x.clone().requires_grad_()
        out = product(product(leaf))  # two layers
        (out * weights).sum().backward()
        grads.append((out.detach(), leaf.grad))
    torch.testing.assert_close(grads[0], grads[1])


def test_an_asymmetric_adjacency_is_refused():
    matrix = torch.tensor([[0.0, 1.0], [0.5, 0.0]]).to_sparse()
    with pytest.raises(ConfigError, match="csr_adjacency: the model's adjacency is not symmetric"):
        symmetric_csr(matrix)
    torch.testing.assert_close(symmetric_csr(matrix + matrix.t()).to_dense(), (matrix + matrix.t()).to_dense())


def test_the_adjacency_refuses_every_use_but_its_product():
    adjacency = SymmetricAdjacency(symmetric_csr(torch.eye(3).to_sparse()))
    x = torch.randn(3, 2)
    torch.testing.assert_close(torch.sparse.mm(adjacency, x), x)
    with pytest.raises(TypeError, match=r"csr_adjacency: the adjacency supports torch.sparse.mm\(adjacency, x\) only, not add"):
        torch.add(adjacency, x)

