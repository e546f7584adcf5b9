"""The MML models: every backbone learns with every loss, reloads exactly, samples as configured."""

import os
import re
import subprocess
import sys

import pytest
import torch

from recbole_mml.quick_start import build_config, load_data_and_model, prepare_data, train_and_test
from recbole_mml.registry import get_model, get_trainer
from recbole_mml.loss import build_loss
from recbole_mml.model.abstract_recommender import MASKED_SCORE

from conftest import ROOT, TINY, TINY_DATA

MODELS = ["MMLMF", "MMLSimpleX", "MMLLightGCN"]
# Settings that learn the tiny dataset's groups in ten epochs of ten batches (lower margins than the
# author's Gowalla setting: small data).
FAST = dict(TINY, epochs=10, train_batch_size=128, learning_rate=0.01, num_negatives=20, margins=[0.3, 0.5, 0.7])
PER_LOSS = {"MML": {"neg_weight": 20.0}, "CCL": {"ccl_margin": 0.3, "neg_weight": 10.0}, "BPR": {}, "SSM": {}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny dataset loaded and split once for the module (the loaders only yield positives)."""
    os.chdir(tmp_path_factory.mktemp("models"))
    config = build_config("MMLMF", "tiny", config_dict=FAST)
    return prepare_data(config)


def fit(model, data, saved=False, **overrides):
    config = build_config(model, "tiny", config_dict=dict(FAST, **overrides))
    return config, train_and_test(config, *data, saved=saved, verbose=False)


@pytest.fixture(scope="module")
def pop_ndcg(tiny):
    config = build_config("Pop", "tiny", config_dict=dict(TINY, epochs=1))
    return train_and_test(config, *tiny, saved=False, verbose=False)["test_result"]["ndcg@10"]


@pytest.mark.parametrize("loss_type", sorted(PER_LOSS))
@pytest.mark.parametrize("model", MODELS)
def test_each_model_with_each_loss_learns_the_groups_pop_cannot_see(tiny, pop_ndcg, model, loss_type):
    _, result = fit(model, tiny, loss_type=loss_type, **PER_LOSS[loss_type])
    # Pop scores about 0.05 here, a model that learned the item groups about 0.5
    assert result["test_result"]["ndcg@10"] > 4 * pop_ndcg, (model, loss_type, result["test_result"], pop_ndcg)
    assert all(type(value) is float for value in result["test_result"].values())  # plain numbers


@pytest.mark.parametrize("model", MODELS)
def test_saved_model_reloads_and_scores_the_same(tiny, model):
    config, result = fit(model, tiny, saved=True, epochs=1)
    _, reloaded, _, _, _, test_data = load_data_and_model(result["saved_model_file"])
    users = torch.arange(1, 30)
    interaction = {config["USER_ID_FIELD"]: users}
    reloaded.eval()
    first = reloaded.full_sort_predict(interaction)
    _, again, _, _, _, _ = load_data_and_model(result["saved_model_file"])
    again.eval()
    torch.testing.assert_close(again.full_sort_predict(interaction), first)
    # and the reloaded model reproduces the reported test metric
    trainer = get_trainer(config["MODEL_TYPE"], model)(config, reloaded)
    metrics = trainer.evaluate(test_data, load_best_model=False)
    assert metrics["ndcg@10"] == pytest.approx(result["test_result"]["ndcg@10"], abs=1e-4)


def test_cli_trains_mmlmf_prints_plain_numbers_and_refuses_unknown_model(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    args = [sys.executable, os.path.join(ROOT, "run_recbole_mml.py"), "--model=MMLMF", "--dataset=tiny",
            f"--data_path={TINY_DATA}", "--epochs=1", "--show_progress=False", "--num_negatives=10",
            "--neg_sharing=batch"]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"test result: \{'recall@10': [0-9.]+, 'mrr@10': [0-9.]+", done.stdout + done.stderr)
    bad = subprocess.run(args[:2] + ["--model=NoSuchModel", "--dataset=ml-100k"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: model: unknown model 'NoSuchModel' (neither recbole_mml nor RecBole has it)"]


def test_row_scores_match_whichever_path_computes_them(tiny):
    """Gathered vectors (few negatives), a pre-normalised table (many rows), or the whole catalogue
    scored and picked (many negatives per row): all equal the plain cosine."""
    config = build_config("MMLMF", "tiny", config_dict=dict(FAST, num_negatives=3))
    model = get_model("MMLMF")(config, tiny[1]._dataset)
    g = torch.Generator().manual_seed(0)
    for n_users, n_neg in ((3, 3), (30, 5), (3, 40)):  # the three paths on the tiny dataset's 101 items
        users, neg = torch.randint(1, 150, (n_users,), generator=g), torch.randint(1, 101, (n_users, n_neg), generator=g)
        user_e, table = model.encode(users)
        user_e = torch.nn.functional.normalize(user_e, dim=-1)
        cosine = user_e @ torch.nn.functional.normalize(table, dim=-1).T
        torch.testing.assert_close(model.row_scores(user_e, table, neg), cosine.gather(1, neg))
        torch.testing.assert_close(user_e @ model.item_vectors(neg[0], table).T, cosine[:, neg[0]])


@pytest.mark.parametrize("loss_type", sorted(PER_LOSS))
def test_masked_negatives_add_nothing_to_any_loss(loss_type):
    config = {"loss_type": loss_type, "margins": [0.3, 0.5, 0.7], "weights": [0.1, 0.15, 0.75], "pos_weight": 1.0,
              "neg_weight": 10.0, "ccl_margin": 0.3, "temperature": 0.1}
    loss = build_loss(config)
    pos = torch.tensor([0.3, 0.8])
    neg = torch.tensor([[0.5, 0.9], [0.95, -0.2]], requires_grad=True)
    masked = torch.cat([neg, torch.full((2, 1), MASKED_SCORE)], dim=1)
    value = loss(pos, masked)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(neg.grad).all()
    if loss_type in ("MML", "CCL"):  # a cosine of -1 is below every margin: the same zero term
        inert = torch.cat([neg, torch.full((2, 1), -1.0)], dim=1)
        assert value.item() == pytest.approx(loss(pos, inert).item(), rel=1e-6)
    elif loss_type == "BPR":  # the mean over N + 1 terms, one of them zero
        expected = (torch.nn.functional.softplus(neg - pos[:, None]).sum(1) / 3).mean()
        assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    else:  # softmax: exp(-1e4 / T) adds nothing to the partition function
        assert value.item() == pytest.approx(loss(pos, neg).item(), rel=1e-6)
