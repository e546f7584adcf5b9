"""RecBole's own models train, save their best checkpoint, reload it and test through recbole_mml.

A fast subset of scripts/run_all_baselines.py (which runs all 33 general recommenders on ml-100k):
an MF, two graph models (their adjacency needs the scipy fix), the cosine-loss model MML
generalises, and a closed-form one, for one epoch on the tiny dataset.
"""

import math
import os

import pytest

from recbole_mml.quick_start import run

from conftest import TINY

MODELS = ["BPR", "LightGCN", "NGCF", "SimpleX", "EASE"]
METRICS = ["recall@10", "mrr@10", "ndcg@10", "hit@10", "precision@10"]


@pytest.mark.parametrize("model", MODELS)
def test_one_epoch_tested_from_the_saved_best_checkpoint(model, workdir):
    result = run(model, "tiny", config_dict=dict(TINY, epochs=1, train_batch_size=256), saved=True)
    assert os.path.isfile(result["saved_model_file"])
    assert os.path.dirname(os.path.abspath(result["saved_model_file"])).startswith(str(workdir))
    test = result["test_result"]
    for metric in METRICS:
        assert metric in test, f"{metric} missing from {sorted(test)}"
        assert math.isfinite(test[metric]) and 0 <= test[metric] <= 1, f"{metric} = {test[metric]}"
