"""A benchmark run killed mid-training goes on from its last saved epoch and gives the row, and the
per-user scores, of the run that was never killed."""

import os

import pytest
import torch
from recbole.trainer import Trainer

from recbole_mml import run_state
from recbole_mml.checkpoint import load_checkpoint
from recbole_mml.benchmark.execute import execute

from conftest import TINY_DATA

CONFIG = {"epochs": 6, "stopping_step": 100, "show_progress": False, "torch_num_threads": 1, "seed": 5,
          "metrics": ["Recall", "NDCG"], "topk": [20], "valid_metric": "NDCG@20", "data_path": TINY_DATA,
          "eval_batch_size": 100000}


class Killed(Exception):
    pass


def kill_at(monkeypatch, epoch):
    """Make every trainer raise when it starts training ``epoch``, as a killed process stops there."""
    train_epoch = Trainer._train_epoch

    def killing(self, train_data, epoch_idx, *args, **kwargs):
        if epoch_idx == epoch:
            raise Killed(epoch_idx)
        return train_epoch(self, train_data, epoch_idx, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", killing)


def last_state(monkeypatch):
    """A list that receives, as each run ends, its last saved state (the start of its last epoch): the
    weights there show a resumed epoch trained as the uninterrupted one, where the tiny data's
    metrics are too easy to tell."""
    states, finished = [], run_state.finished

    def keep(folder):
        states.append(load_checkpoint(os.path.join(folder, run_state.STATE_FILE)))
        finished(folder)

    monkeypatch.setattr(run_state, "finished", keep)
    return states


# BPR draws negatives from NumPy's stream, ENMF dropout masks from torch's, both shuffle with the
# loader's generator; MMLMF reseeds its streams at every epoch; a fused Adam's state resumes as Adam's
@pytest.mark.parametrize("model, overrides", [("BPR", {}), ("BPR", {"fused_optimizer": True}),
                                              ("ENMF", {"train_batch_size": 32}),
                                              ("MMLMF", {"num_negatives": 10})])
def test_a_killed_run_resumes_to_the_row_of_the_run_never_killed(workdir, monkeypatch, model, overrides):
    monkeypatch.setattr(run_state, "SAVE_EVERY_S", 0.0)
    states = last_state(monkeypatch)
    config = dict(CONFIG, **overrides)
    whole = execute(model, "tiny", config, per_user=True, state_dir=str(workdir / "never_killed"))

    folder = str(workdir / "state")
    with monkeypatch.context() as patch:
        kill_at(patch, 4)
        with pytest.raises(Killed):
            execute(model, "tiny", config, per_user=True, state_dir=folder)
    assert run_state.has_state(folder)
    saved = run_state.progress(folder)  # what a plan lists of the stopped run
    assert saved["epoch"] == 4 and saved["wall_s"] > 0
    resumed = execute(model, "tiny", config, per_user=True, state_dir=folder)
    assert resumed["earlier_wall_s"] == pytest.approx(saved["wall_s"], abs=0.06)

    for key in ("test_recall@20", "test_ndcg@20", "best_valid_score", "epochs_run"):
        assert resumed[key] == whole[key], key
    assert resumed["per_user"] == whole["per_user"]
    (never_killed, killed) = states
    assert never_killed["epoch"] == killed["epoch"] == 5  # epoch 4 was trained after the resume
    for name, weights in never_killed["state_dict"].items():
        assert torch.equal(weights, killed["state_dict"][name]), name
    assert resumed["epochs_run"] == 6 and 0 < resumed["earlier_wall_s"] < resumed["wall_time_s"]
    assert not os.path.exists(folder)  # a tested run leaves no state behind
    assert run_state.progress(folder) is None


def test_a_state_of_other_settings_is_not_resumed(workdir, monkeypatch):
    monkeypatch.setattr(run_state, "SAVE_EVERY_S", 0.0)
    folder = str(workdir / "state")
    with monkeypatch.context() as patch:
        kill_at(patch, 4)
        with pytest.raises(Killed):
            execute("BPR", "tiny", CONFIG, state_dir=folder)
    changed = dict(CONFIG, learning_rate=0.01)
    row = execute("BPR", "tiny", changed, state_dir=folder)
    assert row["epochs_run"] == 6 and row["earlier_wall_s"] == 0.0  # trained from the start
    assert row["test_ndcg@20"] == execute("BPR", "tiny", changed)["test_ndcg@20"]
