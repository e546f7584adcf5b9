"""Lazy Adam for ``learner: sparse_adam``: only the embedding rows a batch touches are updated.

Dense Adam reads and writes every parameter at every step: on Gowalla (4.5 M parameters, 711
batches) that is most of an epoch, although a batch of 1024 positives and 100 shared negatives
touches at most 2,148 rows. RecBole's ``sparse_adam`` hands every parameter to
``torch.optim.SparseAdam``, which fails on the first dense gradient; here the embedding tables built
with ``sparse=True`` go to a lazy Adam with SparseAdam's arithmetic (:class:`RowAdam`) and every other parameter (attention layers, a graph
backbone's tables) to Adam, with one optimizer interface for RecBole's trainer and checkpoints.

:func:`fused` rebuilds an optimizer with torch's fused kernel (``fused_optimizer: True``): on CPU torch's
default goes over all the parameters once per operation of the update, several times per step.
"""

import inspect
import math

import torch
from torch import nn, optim


def sparse_parameters(model):
    """The weights of ``model``'s embedding tables that produce sparse gradients."""
    return [m.weight for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse and m.weight.requires_grad]


FUSABLE = (optim.Adam, optim.AdamW, optim.SGD, optim.Adagrad)
FUSED_DEVICES = ("cpu", "cuda")  # where torch has these classes' fused kernels


def fused(optimizer):
    """``optimizer`` rebuilt, before its first step, with the same parameter groups and settings and
    torch's fused kernel: the same update in one pass over each parameter (equal up to rounding).

    Returned as it is where torch has no fused kernel for its class or its parameters (real floating
    point, on CPU or CUDA), and when it is ``differentiable``.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if type(optimizer) not in FUSABLE or optimizer.defaults.get("differentiable") or not all(
            p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params):
        return optimizer
    drop = ("fused", "foreach")
    groups = [{k: v for k, v in group.items() if k not in drop} for group in optimizer.param_groups]
    accepted = inspect.signature(type(optimizer)).parameters  # AdamW keeps a default it takes no argument for
    settings = {k: v for k, v in optimizer.defaults.items() if k not in drop and k in accepted}
    return type(optimizer)(groups, **settings, fused=True)


class RowAdam(optim.Optimizer):
    """``torch.optim.SparseAdam``'s update, done on the touched rows with index_select / index_put_.

    SparseAdam reads the moments through ``sparse_mask`` and writes them back as sparse additions: on
    Gowalla with a pool of 2000 negatives that was a quarter of an epoch. The arithmetic, the state
    (``step``, ``exp_avg``, ``exp_avg_sq``) and the parameter groups are SparseAdam's, so either one's
    state dict loads into the other.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "maximize": False})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad.coalesce()  # duplicate rows summed: the update is not linear
                rows, values = grad._indices()[0], grad._values()
                if group["maximize"]:
                    values = -values
                if values.numel() == 0:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
                # rows are distinct after coalesce(): plain puts (index_put_, the cheapest of torch's
                # row writes on CPU) instead of additions
                exp_avg = state["exp_avg"].index_select(0, rows).lerp_(values, 1 - beta1)
                exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).lerp_(values * values, 1 - beta2)
                state["exp_avg"].index_put_((rows,), exp_avg)
                state["exp_avg_sq"].index_put_((rows,), exp_avg_sq)
                step_size = group["lr"] * math.sqrt(1 - beta2 ** state["step"]) / (1 - beta1 ** state["step"])
                update = exp_avg.div_(exp_avg_sq.sqrt_().add_(group["eps"]))
                param.index_put_((rows,), param.index_select(0, rows).sub_(update, alpha=step_size))


class LazyAdam:
    """Lazy Adam (:class:`RowAdam`) on sparse embedding tables, ``Adam`` (with ``weight_decay``; fused
    with ``fuse``) on the rest."""

    def __init__(self, model, lr, weight_decay=0.0, fuse=False):
        sparse = sparse_parameters(model)
        sparse_ids = {id(p) for p in sparse}
        dense = [p for p in model.parameters() if p.requires_grad and id(p) not in sparse_ids]
        self.optimizers = []
        if sparse:
            self.optimizers.append(RowAdam(sparse, lr=lr))
        if dense:
            adam = optim.Adam(dense, lr=lr, weight_decay=weight_decay)
            self.optimizers.append(fused(adam) if fuse else adam)

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
