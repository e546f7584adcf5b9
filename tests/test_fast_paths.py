"""Fast paths for RecBole's models (``csr_adjacency``, ``enmf_matmul``): from the same weights and
batches, the same losses, weights and rankings as RecBole's own code, up to float rounding."""

import pytest
import torch

from recbole_mml.errors import ConfigError
from recbole_mml.graph import SymmetricAdjacency
from recbole_mml.quick_start import build_config, build_trainer, prepare_data

from conftest import TINY


def built(model, **settings):
    config = build_config(model, "tiny", config_dict=dict(TINY, **settings))
    dataset, train_data, valid_data, _ = prepare_data(config)
    return build_trainer(config, dataset, train_data), train_data, valid_data


def three_steps(model, optimizer, train_data):
    """The losses of RecBole's training step (``Trainer._train_epoch``'s body) on the first three batches."""
    losses = []
    for batch in [b for _, b in zip(range(3), train_data)]:
        optimizer.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name, key, extra", [("LightGCN", "csr_adjacency", {"n_layers": 3}),
                                                ("ENMF", "enmf_matmul", {})])
def test_a_fast_path_trains_and_ranks_as_recbole_does(workdir, name, key, extra):
    """From the same weights, three Adam steps on the same batches give the same losses and weights up
    to float rounding, and the same full-ranking scores; only the kernels behind them changed."""
    arms = {}
    for switch in (False, True):
        trainer, train_data, valid_data = built(name, **{key: switch}, **extra, train_batch_size=64, learning_rate=0.01)
        model, optimizer = trainer.model, trainer.optimizer
        start = [p.detach().clone() for p in model.parameters()]
        if key == "csr_adjacency":
            assert isinstance(model.norm_adj_matrix, SymmetricAdjacency) is switch
        else:
            assert all((name in vars(model)) is switch  # RecBole's methods, or the instance's rewrites
                       for name in ("forward", "calculate_loss", "full_sort_predict"))
            # the padded history positions, scored once per user with the switch, carry a nonzero embedding
            assert (model.history_item_matrix == 0).any() and model.item_embedding.weight[0].abs().sum() > 0
        losses = three_steps(model, optimizer, train_data)
        model.eval()
        with torch.no_grad():
            users = next(iter(valid_data))[0]
            scores = model.full_sort_predict(users)
        arms[switch] = {"losses": losses, "weights": [p.detach() for p in model.parameters()], "scores": scores,
                        "start": start}
    off, on = arms[False], arms[True]
    assert len(off["losses"]) == 3 and off["losses"][0] != off["losses"][-1]
    assert on["losses"] == pytest.approx(off["losses"], rel=1e-5)
    torch.testing.assert_close(on["start"], off["start"], rtol=0, atol=0)  # the same initial weights
    for w0, plain, switched in zip(off["start"], off["weights"], on["weights"]):  # Adam's step magnifies rounding in near-zero gradients
        assert (switched - plain).norm() < 1e-3 * (plain - w0).norm()
    torch.testing.assert_close(on["scores"], off["scores"], rtol=1e-4, atol=1e-6)


def test_enmf_history_scores_are_recbole_s_sums_in_float64(workdir):
    """In float64, where rounding cannot hide a changed sum, ENMF's losses and weights after three Adam
    steps (dropout on, the same random streams) agree with RecBole's to 1e-10."""
    arms = {}
    for switch in (False, True):
        trainer, train_data, _ = built("ENMF", enmf_matmul=switch, train_batch_size=64, learning_rate=0.01)
        model, optimizer = trainer.model.double(), trainer.optimizer
        torch.manual_seed(0)
        losses = three_steps(model, optimizer, train_data)
        arms[switch] = losses, [p.detach() for p in model.parameters()]
    assert arms[True][0] == pytest.approx(arms[False][0], rel=1e-10)
    for plain, switched in zip(arms[False][1], arms[True][1]):
        torch.testing.assert_close(switched, plain, rtol=1e-10, atol=1e-12)


def test_the_fast_paths_leave_other_models_as_they_are(workdir):
    """NGCF adds the identity to its adjacency before the product: it keeps RecBole's COO tensor and methods."""
    ngcf, _, _ = built("NGCF", csr_adjacency=True, enmf_matmul=True)
    assert isinstance(ngcf.model.norm_adj_matrix, torch.Tensor) and ngcf.model.norm_adj_matrix.layout == torch.sparse_coo
    assert "calculate_loss" not in vars(ngcf.model)


@pytest.mark.parametrize("key", ["csr_adjacency", "enmf_matmul"])
def test_a_fast_path_must_be_true_or_false(key):
    with pytest.raises(ConfigError, match=f"config key '{key}': expected True or False, got 1"):
        build_config("LightGCN", "tiny", config_dict=dict(TINY, **{key: 1}))
