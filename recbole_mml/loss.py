"""Training losses over one positive and N sampled negatives per row, and the registry behind ``loss_type``.

Every loss takes ``pos_scores`` of shape ``[B]`` and ``neg_scores`` of shape ``[B, N]`` and returns a
scalar (``reduction='mean' | 'sum'``) or ``[B]`` (``'none'``). Each says which similarity its scores
are (``cosine`` or ``dot``), so one backbone and one sampler can be trained with any of them. A loss
that also needs the batch's user ids (BSL groups the positives of one user) sets ``needs_users``
and takes them as ``users=``.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mml.errors import ConfigError

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def multi_margin_cosine_loss(pos_scores, neg_scores, margins, weights, pos_weight=1.0, neg_weight=1.0, reduction="mean"):
    r"""Multi-Margin (Cosine) Loss of Ozsoy (arXiv 2405.04614).

    ``L = pos_weight * relu(1 - s_pos) + neg_weight * mean_j sum_k weights[k] * relu(s_neg_j - margins[k])``

    ``sum_k w_k relu(s - m_k)`` is piecewise linear in ``s``, so it is evaluated as
    ``s * W(s) - C(s)`` with ``W``/``C`` the cumulative weights / weighted margins of the margins
    below ``s``, found with one ``bucketize``: memory O(B*N) rather than O(B*N*K).

    Args:
        pos_scores: ``[B]`` cosine similarities of the positive pairs.
        neg_scores: ``[B, N]`` cosine similarities of the negatives.
        margins: ``[K]`` tensor, sorted ascending.
        weights: ``[K]`` tensor of non-negative weights, in the order of ``margins``.
    """
    pos_loss = pos_weight * torch.relu(1.0 - pos_scores)
    zero = margins.new_zeros(1)
    cum_weights = torch.cat([zero, weights.cumsum(0)])
    cum_offsets = torch.cat([zero, (weights * margins).cumsum(0)])
    # number of margins strictly below each score (relu(s - m) is 0 at s == m)
    below = torch.bucketize(neg_scores.detach(), margins, right=False)
    neg_loss = neg_scores * cum_weights[below] - cum_offsets[below]
    return _reduce(pos_loss + neg_weight * neg_loss.mean(dim=-1), reduction)


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")


def _as_float_list(name, values):
    try:
        values = [float(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a list of numbers, got {values!r}") from None
    return values


def _check_finite_non_negative(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


class PairwiseLoss(nn.Module):
    """Base of the selectable losses: ``forward(pos_scores [B], neg_scores [B, N])``."""

    similarity = "cosine"
    needs_users = False

    def __init__(self, reduction="mean"):
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction

    @classmethod
    def from_config(cls, config):
        raise NotImplementedError


class MultiMarginCosineLoss(PairwiseLoss):
    """Multi-Margin Cosine Loss; with one margin and weight 1 it is SimpleX's CCL.

    (Named to avoid ``torch.nn.MultiMarginLoss``, a different, multi-class hinge loss.)
    """

    def __init__(self, margins, weights, pos_weight=1.0, neg_weight=1.0, reduction="mean"):
        super().__init__(reduction)
        margins = _as_float_list("margins", margins)
        weights = _as_float_list("weights", weights)
        if not margins:
            raise ValueError("margins: expected at least one margin, got []")
        if len(weights) != len(margins):
            raise ValueError(f"weights: expected {len(margins)} weights (one per margin), got {len(weights)}")
        for m in margins:
            if not -1.0 <= m <= 1.0:
                raise ValueError(f"margins: expected values in [-1, 1] (cosine), got {m}")
        for w in weights:
            _check_finite_non_negative("weights", w)
        self.pos_weight = _check_finite_non_negative("pos_weight", pos_weight)
        self.neg_weight = _check_finite_non_negative("neg_weight", neg_weight)
        order = sorted(range(len(margins)), key=margins.__getitem__)
        # float64 buffers: cast to the scores' dtype per call, so float64 inputs are exact
        self.register_buffer("margins", torch.tensor([margins[i] for i in order], dtype=torch.float64))
        self.register_buffer("weights", torch.tensor([weights[i] for i in order], dtype=torch.float64))

    @classmethod
    def from_config(cls, config):
        return cls(config["margins"], config["weights"], config["pos_weight"], config["neg_weight"])

    def forward(self, pos_scores, neg_scores):
        margins = self.margins.to(neg_scores.dtype)
        weights = self.weights.to(neg_scores.dtype)
        return multi_margin_cosine_loss(
            pos_scores, neg_scores, margins, weights, self.pos_weight, self.neg_weight, self.reduction
        )

    def extra_repr(self):
        return (
            f"margins={self.margins.tolist()}, weights={self.weights.tolist()}, "
            f"pos_weight={self.pos_weight}, neg_weight={self.neg_weight}"
        )


class CosineContrastiveLoss(MultiMarginCosineLoss):
    """SimpleX's cosine contrastive loss (CCL): one margin, weight 1."""

    def __init__(self, margin=0.9, pos_weight=1.0, neg_weight=1.0, reduction="mean"):
        super().__init__([margin], [1.0], pos_weight, neg_weight, reduction)

    @classmethod
    def from_config(cls, config):
        return cls(config["ccl_margin"], config["pos_weight"], config["neg_weight"])


class BPRLoss(PairwiseLoss):
    """Bayesian personalised ranking over N negatives: ``mean_j softplus(s_neg_j - s_pos)``, dot product."""

    similarity = "dot"

    @classmethod
    def from_config(cls, config):
        return cls()

    def forward(self, pos_scores, neg_scores):
        return _reduce(F.softplus(neg_scores - pos_scores.unsqueeze(-1)).mean(dim=-1), self.reduction)


class SampledSoftmaxLoss(PairwiseLoss):
    """Sampled softmax / InfoNCE on cosines: ``-log softmax([s_pos, s_neg_1..N] / temperature)[0]``."""

    def __init__(self, temperature=0.1, reduction="mean"):
        super().__init__(reduction)
        if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature: expected a finite number > 0, got {temperature!r}")
        self.temperature = float(temperature)

    @classmethod
    def from_config(cls, config):
        return cls(config["temperature"])

    def forward(self, pos_scores, neg_scores):
        logits = torch.cat([pos_scores.unsqueeze(-1), neg_scores], dim=-1) / self.temperature
        return _reduce(torch.logsumexp(logits, dim=-1) - logits[..., 0], self.reduction)


class BilateralSoftmaxLoss(PairwiseLoss):
    r"""Bilateral softmax loss (BSL; Wu et al., "BSL: Understanding and Improving Softmax Loss for
    Recommendation", ICDE 2024), on cosines, as in the authors' code (``mode=multi``):

    ``L = -log mean_{i in P_u} exp(s_ui / t1) + t2 * log mean_j exp(s_uj / t1)``

    where ``P_u`` are the positives of the row's user within the batch (its own positive alone when
    ``users`` is not given). ``t2 = 1`` is sampled softmax with the positive left out of the partition
    function; ``t2 > 1`` weighs the negatives' log-partition more (their DRO view of softmax).
    """

    needs_users = True

    def __init__(self, temperature=0.1, neg_power=1.0, reduction="mean"):
        super().__init__(reduction)
        if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature: expected a finite number > 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.neg_power = _check_finite_non_negative("bsl_neg_power", neg_power)

    @classmethod
    def from_config(cls, config):
        return cls(config["temperature"], config["bsl_neg_power"])

    def forward(self, pos_scores, neg_scores, users=None):
        pos_logits = pos_scores / self.temperature
        if users is not None:
            same = (users.unsqueeze(0) == users.unsqueeze(1)).to(pos_logits.dtype)
            # log mean over the user's positives in the batch, stable: max-shifted exp
            shift = pos_logits.max().detach()
            pos_term = torch.log((same @ torch.exp(pos_logits - shift)) / same.sum(1)) + shift
        else:
            pos_term = pos_logits
        neg_term = torch.logsumexp(neg_scores / self.temperature, dim=-1) - math.log(neg_scores.shape[-1])
        return _reduce(self.neg_power * neg_term - pos_term, self.reduction)

    def extra_repr(self):
        return f"temperature={self.temperature}, neg_power={self.neg_power}"


LOSSES = {}


def register_loss(name, loss_class):
    """Make ``loss_class`` selectable as ``loss_type: <name>``; it needs ``from_config(config)``."""
    LOSSES[name.upper()] = loss_class
    return loss_class


for _name, _cls in (
    ("MML", MultiMarginCosineLoss),
    ("CCL", CosineContrastiveLoss),
    ("BPR", BPRLoss),
    ("SSM", SampledSoftmaxLoss),
    ("BSL", BilateralSoftmaxLoss),
):
    register_loss(_name, _cls)


def build_loss(config):
    """The loss named by ``config['loss_type']``, built from the config; ConfigError names the bad key."""
    name = str(config["loss_type"]).upper()
    if name not in LOSSES:
        raise ConfigError(f"loss_type: expected one of {sorted(LOSSES)}, got {config['loss_type']!r}")
    try:
        return LOSSES[name].from_config(config)
    except ValueError as e:
        raise ConfigError(str(e)) from None
