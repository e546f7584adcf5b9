"""Lazy Adam for ``learner: sparse_adam``: only the embedding rows a batch touches are updated.

Dense Adam reads and writes every parameter at every step: on Gowalla (4.5 M parameters, 711
batches) that is most of an epoch, although a batch of 1024 positives and 100 shared negatives
touches at most 2,148 rows. RecBole's ``sparse_adam`` hands every parameter to
``torch.optim.SparseAdam``, which fails on the first dense gradient; here the embedding tables built
with ``sparse=True`` go to ``SparseAdam`` and every other parameter (attention layers, a graph
backbone's tables) to Adam, with one optimizer interface for RecBole's trainer and checkpoints.
"""

from torch import nn, optim


def sparse_parameters(model):
    """The weights of ``model``'s embedding tables that produce sparse gradients."""
    return [m.weight for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse and m.weight.requires_grad]


class LazyAdam:
    """``SparseAdam`` on sparse embedding tables, ``Adam`` (with ``weight_decay``) on the rest."""

    def __init__(self, model, lr, weight_decay=0.0):
        sparse = sparse_parameters(model)
        sparse_ids = {id(p) for p in sparse}
        dense = [p for p in model.parameters() if p.requires_grad and id(p) not in sparse_ids]
        self.optimizers = []
        if sparse:
            self.optimizers.append(optim.SparseAdam(sparse, lr=lr))
        if dense:
            self.optimizers.append(optim.Adam(dense, lr=lr, weight_decay=weight_decay))

    @property
    def param_groups(self):
        return [group for opt in self.optimizers for group in opt.param_groups]

    def zero_grad(self, set_to_none=True):
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        for opt in self.optimizers:
            opt.step()

    def state_dict(self):
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state_dict):
        states = state_dict.get("optimizers") if isinstance(state_dict, dict) else None
        if states is None or len(states) != len(self.optimizers):
            raise ValueError("optimizer state: not a LazyAdam state of the same parameter layout")
        for opt, state in zip(self.optimizers, states):
            opt.load_state_dict(state)
