"""Opt-in fast paths for RecBole's own models: the same sums with cheaper kernels, so a model trains
as RecBole's does up to float rounding (``benchmarks/speed_switch.py`` measures each, and how far
apart the weights end).

- ``csr_adjacency``: RecBole's LightGCN multiplies by its normalised adjacency as CSR, with the
  symmetric backward (:mod:`recbole_mml.graph`): 1.8x faster training step on Gowalla.
- ``enmf_matmul``: RecBole's ENMF forms the Gram matrices of its whole-data loss (``E^T E`` over
  all items and over the batch's users) with one matrix product, where RecBole sums a
  ``[rows, d, d]`` stack of outer products (672 MB for Gowalla's items, at every step). Its loss
  scores each user's history row, padded to the longest history (730 on Gowalla's training split,
  against a mean of 24), through a ``[users, max_len, d]`` stack: the scores are computed for the
  real entries only, and the padding's one score per user (its id 0 keeps a nonzero, frozen
  embedding) is broadcast to the padded positions, so the loss sums the same ``[users, max_len]``
  scores. With the Gram matrices, a 20x faster training step on Gowalla. Its full-ranking scores ``h . (u * e_i)`` become
  one product ``(u * h) @ E^T``, where RecBole builds a ``[users, items, d]`` stack: the scoring of a
  Gowalla evaluation takes 14 s instead of 622.

Models a switch does not concern are left as they are. :func:`apply` is called once per built
model (:func:`recbole_mml.quick_start.build_model`).
"""

import types

from recbole_mml.graph import SymmetricAdjacency, symmetric_csr

FAST_PATH_KEYS = ("csr_adjacency", "enmf_matmul")

ENMF_LOSS = {  # RecBole 1.2.1's ENMF.calculate_loss: the same lines, one matrix product per Gram matrix
    "item_sum = torch.bmm(\n        self.item_embedding.weight.unsqueeze(2),\n"
    "        self.item_embedding.weight.unsqueeze(1),\n    ).sum(dim=0)":
        "item_sum = torch.mm(\n        self.item_embedding.weight.t(),\n"
        "        self.item_embedding.weight,\n    )",
    "user_sum = torch.bmm(batch_user.unsqueeze(2), batch_user.unsqueeze(1)).sum(\n        dim=0\n    )":
        "user_sum = torch.mm(\n        batch_user.t(), batch_user\n    )",
}
ENMF_HISTORY = {  # and ENMF.forward: h folded into the users, each real history entry scored once
    "item_embedding = self.item_embedding(\n        user_inter\n    )":
        "weighted = user_embedding * self.H_i.weight\n"
        "    real = user_inter.ne(0)\n"
        "    rows, columns = real.nonzero(as_tuple=True)\n"
        "    item_embedding = self.item_embedding(user_inter[rows, columns])",
    "score = torch.mul(\n        user_embedding.unsqueeze(1), item_embedding\n    )":
        "padding = weighted @ self.item_embedding.weight[0].detach()  # padding_idx: no gradient, as RecBole's lookup\n"
        "    score = padding.unsqueeze(1).expand(real.shape).masked_scatter(real, (weighted[rows] * item_embedding).sum(1))",
    "score = self.H_i(score)": "score = score",
    "score = score.squeeze(-1)": "score = score",
}
ENMF_SCORES = {  # and ENMF.full_sort_predict: H_i's weights folded into the users, then one product
    "score = torch.mul(\n        u_e.unsqueeze(1), all_i_e.unsqueeze(0)\n    )":
        "score = torch.mm(\n        u_e * self.H_i.weight, all_i_e.t()\n    )",
    "score = self.H_i(score).squeeze(2)": "score = score",
}


def use_csr_adjacency(model):
    """RecBole's LightGCN, whose ``norm_adj_matrix`` is symmetric and used only as
    ``torch.sparse.mm(norm_adj_matrix, x)``, gets the CSR product (NGCF adds to its adjacency first)."""
    from recbole.model.general_recommender import LightGCN

    if type(model) is LightGCN:
        model.norm_adj_matrix = SymmetricAdjacency(symmetric_csr(model.norm_adj_matrix))


def use_enmf_matmul(model):
    """RecBole's ENMF gets its ``forward``, ``calculate_loss`` and ``full_sort_predict`` as above; on a
    RecBole whose ENMF no longer has those lines this refuses (RuntimeError) rather than replace new code."""
    from recbole.model.general_recommender import ENMF

    from recbole_mml.compat import rewritten

    if type(model) is ENMF:
        for name, lines in (("forward", ENMF_HISTORY), ("calculate_loss", ENMF_LOSS),
                            ("full_sort_predict", ENMF_SCORES)):
            setattr(model, name, types.MethodType(rewritten(getattr(ENMF, name), lines), model))


def apply(model, config):
    """``model`` with the fast paths its config turns on."""
    if config["csr_adjacency"]:
        use_csr_adjacency(model)
    if config["enmf_matmul"]:
        use_enmf_matmul(model)
    return model
