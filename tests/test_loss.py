"""The losses: MML against an independent float64 evaluation, K = 1 equals SimpleX's CCL, bad input refused."""

import numpy as np
import pytest
import torch

from recbole_mml.errors import ConfigError
from recbole_mml.loss import (
    LOSSES,
    BPRLoss,
    CosineContrastiveLoss,
    MultiMarginCosineLoss,
    PairwiseLoss,
    SampledSoftmaxLoss,
    build_loss,
    register_loss,
)


def reference_mml(pos, neg, margins, weights, pos_weight, neg_weight):
    """The formula written out with loops, in float64 numpy: one value per row."""
    out = []
    for b in range(pos.shape[0]):
        neg_term = 0.0
        for j in range(neg.shape[1]):
            for m, w in zip(margins, weights):
                neg_term += w * max(neg[b, j] - m, 0.0)
        out.append(pos_weight * max(1.0 - pos[b], 0.0) + neg_weight * neg_term / neg.shape[1])
    return np.array(out)


@pytest.mark.parametrize("B,N,K", [(1, 1, 1), (7, 3, 2), (32, 50, 3), (5, 200, 5)])
def test_mml_matches_independent_float64_evaluation(B, N, K):
    rng = np.random.default_rng(B * 1000 + N * 10 + K)
    pos = rng.uniform(-1, 1, B)
    neg = rng.uniform(-1, 1, (B, N))
    margins = sorted(rng.uniform(-0.5, 0.95, K).tolist(), reverse=True)  # given unsorted on purpose
    weights = rng.uniform(0, 2, K).tolist()
    expected = reference_mml(pos, neg, margins, weights, 1.3, 7.0)
    loss = MultiMarginCosineLoss(margins, weights, pos_weight=1.3, neg_weight=7.0, reduction="none")
    got = loss(torch.tensor(pos), torch.tensor(neg)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    mean = MultiMarginCosineLoss(margins, weights, 1.3, 7.0)(torch.tensor(pos), torch.tensor(neg))
    total = MultiMarginCosineLoss(margins, weights, 1.3, 7.0, reduction="sum")(torch.tensor(pos), torch.tensor(neg))
    assert mean.item() == pytest.approx(expected.mean(), rel=1e-10)
    assert total.item() == pytest.approx(expected.sum(), rel=1e-10)


def test_mml_float32_close_to_float64():
    rng = np.random.default_rng(0)
    pos, neg = rng.uniform(-1, 1, 64), rng.uniform(-1, 1, (64, 100))
    loss = MultiMarginCosineLoss([0.7, 0.8, 0.9], [0.10, 0.15, 0.75], neg_weight=700.0)
    got = loss(torch.tensor(pos, dtype=torch.float32), torch.tensor(neg, dtype=torch.float32)).item()
    assert got == pytest.approx(reference_mml(pos, neg, [0.7, 0.8, 0.9], [0.10, 0.15, 0.75], 1.0, 700.0).mean(), rel=1e-5)


def recbole_simplex_ccl(pos_cos, neg_cos, margin, negative_weight):
    """RecBole 1.2.1 SimpleX.forward's CCL lines, verbatim (scores [B, 1] and [B, N])."""
    pos_loss = torch.relu(1 - pos_cos)
    neg_loss = torch.relu(neg_cos - margin)
    neg_loss = neg_loss.mean(1, keepdim=True) * negative_weight
    return (pos_loss + neg_loss).mean()


@pytest.mark.parametrize("margin,neg_weight", [(0.9, 150.0), (0.5, 10.0), (0.0, 1.0), (-0.3, 3.0)])
def test_one_margin_equals_recbole_simplex_ccl(margin, neg_weight):
    torch.manual_seed(1)
    pos, neg = torch.rand(40) * 2 - 1, torch.rand(40, 30) * 2 - 1
    expected = recbole_simplex_ccl(pos.unsqueeze(1), neg, margin, neg_weight)
    mml = MultiMarginCosineLoss([margin], [1.0], neg_weight=neg_weight)(pos, neg)
    ccl = CosineContrastiveLoss(margin, neg_weight=neg_weight)(pos, neg)
    torch.testing.assert_close(mml, expected)
    torch.testing.assert_close(ccl, expected)


def test_one_margin_equals_ccl_of_a_real_recbole_simplex(workdir):
    """Same scores, from RecBole's own SimpleX model (reg and dropout off): identical loss."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender.simplex import SimpleX

    config = Config("SimpleX", "ml-100k", config_dict={
        "reg_weight": 0.0, "dropout_prob": 0.0, "margin": 0.8, "negative_weight": 50, "state": "ERROR",
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 20, "alpha": 1.0, "dynamic": False,
                                  "candidate_num": 0}})
    train_data, _, _ = data_preparation(config, create_dataset(config))
    model = SimpleX(config, train_data._dataset)
    batch = next(iter(train_data))
    with torch.no_grad():
        expected = model.calculate_loss(batch)
        # the same unpacking as SimpleX.calculate_loss: N copies of each positive, negatives per copy
        neg_items = batch[model.NEG_ITEM_ID].reshape(20, -1).T
        n_rows = neg_items.shape[0]
        user, pos_item = batch[model.USER_ID][:n_rows], batch[model.ITEM_ID][:n_rows]
        history, history_len = model.history_item_id[user], model.history_item_len[user]
        fused = model.get_UI_aggregation(model.user_emb(user), model.item_emb(history), history_len)
        pos_cos = model.get_cos(fused, model.item_emb(pos_item).unsqueeze(1)).squeeze(1)
        neg_cos = model.get_cos(fused, model.item_emb(neg_items))
        ours = MultiMarginCosineLoss([0.8], [1.0], neg_weight=50.0)(pos_cos, neg_cos)
    torch.testing.assert_close(ours, expected)


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    pos = (torch.rand(6, dtype=torch.float64) * 1.8 - 0.9).requires_grad_()
    neg = (torch.rand(6, 9, dtype=torch.float64) * 1.8 - 0.9).requires_grad_()
    loss = MultiMarginCosineLoss([-0.2, 0.3, 0.6], [0.5, 1.0, 2.0], pos_weight=1.5, neg_weight=3.0).double()
    assert torch.autograd.gradcheck(lambda p, n: loss(p, n), (pos, neg))


def test_gradient_is_piecewise_weight_sum():
    """d/ds of sum_k w_k relu(s - m_k) is the sum of the weights of the margins below s."""
    loss = MultiMarginCosineLoss([0.2, 0.5, 0.8], [1.0, 2.0, 4.0], pos_weight=0.0, neg_weight=1.0, reduction="sum")
    neg = torch.tensor([[0.1, 0.3, 0.6, 0.9]], requires_grad=True)
    loss(torch.ones(1), neg).backward()
    torch.testing.assert_close(neg.grad, torch.tensor([[0.0, 1.0, 3.0, 7.0]]) / 4)


@pytest.mark.parametrize("kwargs,name", [
    ({"margins": [], "weights": []}, "margins"),
    ({"margins": [0.5, 0.9], "weights": [1.0]}, "weights"),
    ({"margins": [1.5], "weights": [1.0]}, "margins"),
    ({"margins": [-1.01], "weights": [1.0]}, "margins"),
    ({"margins": [0.9], "weights": [-1.0]}, "weights"),
    ({"margins": [0.9], "weights": [float("nan")]}, "weights"),
    ({"margins": [0.9], "weights": [float("inf")]}, "weights"),
    ({"margins": [0.9], "weights": [1.0], "neg_weight": -2.0}, "neg_weight"),
    ({"margins": [0.9], "weights": [1.0], "pos_weight": float("nan")}, "pos_weight"),
    ({"margins": ["a"], "weights": [1.0]}, "margins"),
    ({"margins": [0.9], "weights": [1.0], "reduction": "avg"}, "reduction"),
])
def test_bad_parameters_raise_value_error_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        MultiMarginCosineLoss(**kwargs)


def test_other_losses_formulas():
    pos, neg = torch.tensor([0.5, -0.2]), torch.tensor([[0.1, 0.4, -0.3], [0.0, 0.2, 0.9]])
    bpr = BPRLoss(reduction="none")(pos, neg)
    torch.testing.assert_close(bpr, torch.log1p(torch.exp(neg - pos[:, None])).mean(1))
    ssm = SampledSoftmaxLoss(temperature=0.5, reduction="none")(pos, neg)
    logits = torch.cat([pos[:, None], neg], 1) / 0.5
    torch.testing.assert_close(ssm, -torch.log_softmax(logits, 1)[:, 0])
    assert BPRLoss.similarity == "dot" and SampledSoftmaxLoss.similarity == "cosine"
    with pytest.raises(ValueError, match="^temperature:"):
        SampledSoftmaxLoss(temperature=0)


def test_loss_registry_builds_each_loss_type_and_accepts_new_ones():
    config = {"loss_type": "mml", "margins": [0.8, 0.9], "weights": [0.3, 0.7], "pos_weight": 1.0,
              "neg_weight": 10.0, "ccl_margin": 0.7, "temperature": 0.2}
    assert isinstance(build_loss(config), MultiMarginCosineLoss)
    for name, cls in (("CCL", CosineContrastiveLoss), ("BPR", BPRLoss), ("SSM", SampledSoftmaxLoss)):
        assert type(build_loss(dict(config, loss_type=name))) is cls
    assert build_loss(dict(config, loss_type="CCL")).margins.tolist() == pytest.approx([0.7])

    class Hinge(PairwiseLoss):
        @classmethod
        def from_config(cls, config):
            return cls()

        def forward(self, pos_scores, neg_scores):
            return torch.relu(neg_scores - pos_scores.unsqueeze(-1) + 0.1).mean()

    register_loss("HINGE", Hinge)
    try:
        assert isinstance(build_loss(dict(config, loss_type="hinge")), Hinge)
    finally:
        LOSSES.pop("HINGE")
    with pytest.raises(ConfigError, match="loss_type"):
        build_loss(dict(config, loss_type="nope"))
    with pytest.raises(ConfigError, match="^margins:"):
        build_loss(dict(config, margins=[2.0, 0.5]))


def test_module_stores_parameters_as_buffers_and_moves_with_dtype():
    loss = MultiMarginCosineLoss([0.9, 0.7], [0.75, 0.25])
    assert dict(loss.named_buffers()).keys() == {"margins", "weights"}
    assert loss.margins.tolist() == pytest.approx([0.7, 0.9]) and loss.weights.tolist() == [0.25, 0.75]
    for dtype in (torch.float32, torch.float64):
        assert loss(torch.zeros(2, dtype=dtype), torch.zeros(2, 3, dtype=dtype)).dtype == dtype
    assert "margins=" in repr(loss)


def reference_bsl(pos, neg, users, t1, t2):
    """BSL written out with loops in float64 numpy (the authors' mode=multi): one value per row."""
    out = []
    for b in range(pos.shape[0]):
        group = [pos[c] for c in range(pos.shape[0]) if users[c] == users[b]]
        pos_term = np.log(np.mean([np.exp(s / t1) for s in group]))
        neg_term = np.log(np.mean([np.exp(s / t1) for s in neg[b]]))
        out.append(t2 * neg_term - pos_term)
    return np.array(out)


@pytest.mark.parametrize("B,N", [(1, 1), (9, 4), (64, 100)])
def test_bsl_matches_independent_float64_evaluation(B, N):
    from recbole_mml.loss import BilateralSoftmaxLoss

    rng = np.random.default_rng(B + N)
    pos, neg = rng.uniform(-1, 1, B), rng.uniform(-1, 1, (B, N))
    users = rng.integers(0, max(B // 3, 1), B)  # several rows per user
    loss = BilateralSoftmaxLoss(temperature=0.08, neg_power=1.22, reduction="none")
    got = loss(torch.tensor(pos), torch.tensor(neg), users=torch.tensor(users)).numpy()
    np.testing.assert_allclose(got, reference_bsl(pos, neg, users, 0.08, 1.22), rtol=1e-10, atol=1e-10)
    # without user ids each row is its own group
    alone = loss(torch.tensor(pos), torch.tensor(neg)).numpy()
    np.testing.assert_allclose(alone, reference_bsl(pos, neg, np.arange(B), 0.08, 1.22), rtol=1e-10, atol=1e-10)


def test_bsl_with_power_one_is_softmax_without_the_positive_in_the_partition():
    from recbole_mml.loss import BilateralSoftmaxLoss

    rng = np.random.default_rng(1)
    pos, neg = torch.tensor(rng.uniform(-1, 1, 8)), torch.tensor(rng.uniform(-1, 1, (8, 30)))
    expected = torch.logsumexp(neg / 0.1, dim=1) - np.log(30) - pos / 0.1
    torch.testing.assert_close(BilateralSoftmaxLoss(0.1, 1.0, reduction="none")(pos, neg), expected)


@pytest.mark.parametrize("bad", [{"temperature": 0.0}, {"temperature": float("nan")}, {"neg_power": -1.0}])
def test_bsl_refuses_bad_parameters(bad):
    from recbole_mml.loss import BilateralSoftmaxLoss

    name = "temperature" if "temperature" in bad else "bsl_neg_power"
    with pytest.raises(ValueError, match=name):
        BilateralSoftmaxLoss(**bad)
