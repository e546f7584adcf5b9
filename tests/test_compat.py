"""recbole_mml.compat: each test states what one fix restores and fails without that fix; the fixes
are guarded by RecBole's version and can be undone."""

import math
import os
import pickle
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import recbole
import recbole.quick_start  # before apply(): its two fixes are applied once it is imported
from recbole.data import create_dataset, data_preparation
from recbole.data.dataset import Dataset
from recbole.model.general_recommender import BPR, ConvNCF, LightGCN
from recbole.trainer import Trainer

from recbole_mml import compat
from recbole_mml.errors import RecBoleVersionWarning
from recbole_mml.quick_start import build_config

compat.apply()

# Small and quick: one epoch, large batches (2**20 scores is 623 users of ml-100k per evaluation batch).
FAST = {"epochs": 1, "train_batch_size": 8192, "eval_batch_size": 2**20, "show_progress": False}
BEYOND_ACCURACY = ["ItemCoverage", "AveragePopularity", "GiniIndex", "ShannonEntropy", "TailPercentage"]


@pytest.fixture(scope="module")
def ml100k():
    """BPR's config, dataset and loaders for ml-100k, built once for the module."""
    config = build_config("BPR", "ml-100k", config_dict=dict(FAST))
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    return config, dataset, train_data, valid_data, test_data


def assert_finite_metrics(result, names):
    for name in names:
        assert name in result, f"{name} missing from {sorted(result)}"
        assert math.isfinite(float(result[name])), f"{name} = {result[name]}"


def test_numpy_aliases_exist_and_recbole_config_builds(monkeypatch):
    from recbole.config import Config as RecBoleConfig

    monkeypatch.setattr(sys, "argv", ["recbole"])  # RecBole's own Config also reads sys.argv

    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.unicode_ is np.str_
    config = RecBoleConfig("BPR", "ml-100k", config_dict={"show_progress": False})
    assert config["model"] == "BPR" and config["embedding_size"] == 64


def test_best_checkpoint_reloads_while_torch_load_stays_safe(ml100k, workdir):
    config, _, train_data, valid_data, test_data = ml100k
    trainer = Trainer(config, BPR(config, train_data.dataset))
    trainer.fit(train_data, valid_data, verbose=False, saved=True)
    assert os.path.isfile(trainer.saved_model_file)
    reloaded = trainer.evaluate(test_data, load_best_model=True)
    assert_finite_metrics(reloaded, ["recall@10", "ndcg@10"])

    # A fresh trainer reads the same file, both for testing and for resuming training.
    fresh = Trainer(config, BPR(config, train_data.dataset))
    assert fresh.evaluate(test_data, load_best_model=True, model_file=trainer.saved_model_file) == reloaded
    fresh.resume_checkpoint(trainer.saved_model_file)
    assert fresh.start_epoch == 1

    # Only RecBole's own checkpoints bypass safe loading: a plain torch.load still refuses pickled objects.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(trainer.saved_model_file)


@pytest.fixture(scope="module")
def bpr_checkpoint(ml100k, tmp_path_factory):
    """A checkpoint of an (untrained) BPR written by RecBole's trainer, and that BPR."""
    config, _, train_data, _, _ = ml100k
    model = BPR(config, train_data.dataset)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("bpr"))
        trainer = Trainer(config, model)
        trainer._save_checkpoint(0, verbose=False)
        return os.path.abspath(trainer.saved_model_file), model


def test_models_read_their_pretrained_recbole_checkpoint(ml100k, bpr_checkpoint):
    _, _, train_data, _, _ = ml100k
    path, bpr = bpr_checkpoint
    config = build_config("ConvNCF", "ml-100k", config_dict=dict(
        FAST, train_method="after_pretrain", pre_model_path=path
    ))
    model = ConvNCF(config, train_data.dataset)
    assert torch.equal(model.user_embedding.weight, bpr.user_embedding.weight)
    assert torch.equal(model.item_embedding.weight, bpr.item_embedding.weight)
    with pytest.raises(pickle.UnpicklingError):  # the module-wide torch.load is still the safe one
        torch.load(path)


def test_recbole_load_data_and_model_reads_a_checkpoint(bpr_checkpoint, workdir, monkeypatch):
    from recbole.quick_start import load_data_and_model

    monkeypatch.setattr(sys, "argv", ["recbole"])  # RecBole's Config reads sys.argv
    path, bpr = bpr_checkpoint
    config, model, _, _, _, test_data = load_data_and_model(path)
    assert config["model"] == "BPR" and isinstance(model, BPR) and test_data is not None
    assert torch.equal(model.user_embedding.weight, bpr.user_embedding.weight)


def test_dok_matrix_update_and_lightgcn_adjacency(ml100k):
    matrix = sp.dok_matrix((2, 3), dtype=np.float32)
    matrix._update({(0, 1): 1.0, (1, 2): 2.0})
    assert matrix.toarray().tolist() == [[0, 1, 0], [0, 0, 2]]

    _, _, train_data, _, _ = ml100k
    config = build_config("LightGCN", "ml-100k", config_dict=dict(FAST))
    model = LightGCN(config, train_data.dataset)
    adjacency = model.norm_adj_matrix.coalesce()
    size = train_data.dataset.user_num + train_data.dataset.item_num
    assert adjacency.shape == (size, size)
    assert adjacency.indices().shape[1] == 2 * train_data.dataset.inter_num  # each edge, both ways
    dense = adjacency.to_dense()
    assert torch.equal(dense, dense.T)


def test_collector_handles_integer_counts_for_beyond_accuracy_metrics(ml100k, workdir):
    _, _, train_data, _, test_data = ml100k
    config = build_config("BPR", "ml-100k", config_dict=dict(FAST, metrics=["Recall"] + BEYOND_ACCURACY))
    trainer = Trainer(config, BPR(config, train_data.dataset))
    trainer.eval_collector.data_collect(train_data)  # item counts, as Trainer.fit collects them
    result = trainer.evaluate(test_data, load_best_model=False)
    names = ["itemcoverage@10", "averagepopularity@10", "giniindex@10", "shannonentropy@10", "tailpercentage@10"]
    assert_finite_metrics(result, names)
    assert 0 < result["itemcoverage@10"] <= 1 and 0 <= result["giniindex@10"] <= 1


@pytest.fixture(scope="module")
def items_with_gaps(tmp_path_factory):
    """A tiny dataset whose .item file has an empty token_seq cell, a missing float and a missing token."""
    root = tmp_path_factory.mktemp("data")
    (root / "toy").mkdir()
    inter = ["user_id:token\titem_id:token"]
    inter += [f"u{u}\ti{(u * 3 + k) % 8 + 1}" for u in range(1, 11) for k in range(5)]
    (root / "toy" / "toy.inter").write_text("\n".join(inter) + "\n")
    items = {  # item: (genres, price, brand, scores)
        "i1": ("drama comedy", "2.0", "b1", "0.5 1.5"),
        "i2": ("", "4.0", "b2", "1.0"),
        "i3": ("horror", "", "b1", "3.0 0.0 2.0"),
        "i4": ("comedy", "6.0", "", "2.0"),
        "i5": ("drama", "8.0", "b2", "1.0 1.0"),
        "i6": ("horror comedy drama", "10.0", "b1", "0.0"),
        "i7": ("comedy", "12.0", "b2", "2.5"),
        "i8": ("drama", "14.0", "b1", "1.5 0.5"),
    }
    lines = ["item_id:token\tgenres:token_seq\tprice:float\tbrand:token\tscores:float_seq"]
    lines += ["\t".join((item,) + row) for item, row in items.items()]
    (root / "toy" / "toy.item").write_text("\n".join(lines) + "\n")
    config = build_config("BPR", "toy", config_dict={
        "data_path": str(root), "normalize_field": ["scores"],
        "load_col": {"inter": ["user_id", "item_id"], "item": ["item_id", "genres", "price", "brand", "scores"]},
    })
    dataset = create_dataset(config)
    return dataset, dataset.item_feat.set_index("item_id"), items


def _row(dataset, feat, item):
    return feat.loc[dataset.token2id("item_id", item)]


def test_empty_token_seq_cell_loads_as_an_empty_sequence(items_with_gaps):
    dataset, feat, _ = items_with_gaps
    assert len(_row(dataset, feat, "i2")["genres"]) == 0


def test_missing_values_are_filled(items_with_gaps):
    dataset, feat, items = items_with_gaps
    prices = [float(row[1]) for row in items.values() if row[1]]
    assert _row(dataset, feat, "i3")["price"] == pytest.approx(np.mean(prices))
    assert _row(dataset, feat, "i4")["brand"] == 0  # [PAD]
    assert not feat["price"].isna().any() and not feat["brand"].isna().any()


def test_sequence_cells_keep_their_own_values(items_with_gaps):
    dataset, feat, items = items_with_gaps
    genre_tokens = dataset.field2id_token["genres"]
    all_scores = [float(s) for row in items.values() for s in row[3].split()]
    low, high = min(all_scores), max(all_scores)
    for item, (genres, _, _, scores) in items.items():
        row = _row(dataset, feat, item)
        assert list(genre_tokens[np.asarray(row["genres"], dtype=int)]) == genres.split()
        expected = [(float(s) - low) / (high - low) for s in scores.split()]
        assert np.allclose(row["scores"], expected)


def test_ray_objective_function_reports_one_dict(workdir, monkeypatch):
    from ray import tune

    monkeypatch.setattr(sys, "argv", ["recbole"])

    class TrialContext:
        def get_trial_id(self):
            return "trial_0"

    reports = []
    monkeypatch.setattr(tune, "get_context", lambda: TrialContext())
    monkeypatch.setattr(tune, "report", lambda *args, **kwargs: reports.append((args, kwargs)))
    result = recbole.quick_start.objective_function(
        config_dict=dict(FAST, model="BPR", dataset="ml-100k"), saved=True
    )
    assert result["model"] == "BPR"
    assert_finite_metrics(result["test_result"], ["recall@10", "ndcg@10"])
    assert reports == [((dict(result["test_result"]),), {})]


class BeyondTensors:
    """Any class: torch >= 2.6 refuses to unpickle it by default, as it refuses RecBole's Config."""


def test_each_fix_is_needed_on_this_stack_and_undone_by_restore(tmp_path):
    """On numpy 2, pandas 3, scipy >= 1.13, torch >= 2.6 and Ray >= 2.7 every fix is needed;
    restore() puts RecBole's own code back, and apply() puts the fixes back."""
    import recbole.trainer.trainer as trainer_module

    assert compat.applied() == sorted(fix.name for fix in compat.FIXES)
    path = tmp_path / "config.pth"
    torch.save({"config": BeyondTensors()}, path)
    assert isinstance(trainer_module.torch.load(path)["config"], BeyondTensors)
    fixed = Dataset._fill_nan, recbole.quick_start.objective_function
    try:
        compat.restore()
        assert compat.applied() == []
        assert trainer_module.torch is torch and "float_" not in vars(np) and not hasattr(sp.dok_matrix, "_update")
        original = Dataset._fill_nan, recbole.quick_start.objective_function
        assert original[0] is not fixed[0] and original[1] is not fixed[1]
        with pytest.raises(pickle.UnpicklingError):  # RecBole's trainer reads with torch's safe default again
            trainer_module.torch.load(path)
    finally:
        compat.apply()
    assert Dataset._fill_nan is not original[0] and trainer_module.torch is not torch and np.float_ is np.float64


def test_another_recbole_version_gets_a_warning_and_no_fix(monkeypatch):
    try:
        compat.restore()
        monkeypatch.setattr(recbole, "__version__", "1.3.0")
        with pytest.warns(RecBoleVersionWarning, match="written for RecBole 1.2.1, found 1.3.0: none applied"):
            compat.apply()
        assert compat.applied() == []
    finally:
        monkeypatch.undo()
        compat.apply()
    assert compat.applied() == sorted(fix.name for fix in compat.FIXES)


def test_a_changed_recbole_source_is_refused_not_replaced():
    with pytest.raises(RuntimeError, match=r"Dataset\._fill_nan no longer contains 'fillna\(value=1'"):
        compat.rewritten(Dataset._fill_nan, {"fillna(value=1": "fillna(value=2"})


def test_anomaly_mode_stays_off_after_recbole_models_are_imported():
    """SINE's module switches torch's anomaly detection on at import (a stack trace per forward op,
    about a quarter of an MMLMF epoch); checking whether the fix is needed must not import it."""
    import subprocess

    code = ("import torch, recbole_mml.quick_start; from recbole.utils import get_model; get_model('SINE'); "
            "import recbole.model.sequential_recommender.sine; print(torch.is_anomaly_enabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_quiet_recbole_warnings_hides_recbole_s_own_and_keeps_the_others():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compat.quiet_recbole_warnings()
        for module in ("recbole.trainer.trainer", "recbole", "recbole_mml.loss", "torch.amp"):
            warnings.warn_explicit(f"from {module}", FutureWarning, f"{module}.py", 1, module=module)
    assert [str(w.message) for w in caught] == ["from recbole_mml.loss", "from torch.amp"]
