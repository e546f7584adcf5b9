"""The time-to-quality benchmark on a tiny dataset: its curve, its summary row and per-user scores agree."""

import importlib.util
import os

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("time_to_quality", os.path.join(ROOT, "benchmarks", "time_to_quality.py"))
time_to_quality = importlib.util.module_from_spec(spec)
spec.loader.exec_module(time_to_quality)

# MMLMF on the tiny data written by each test; the tests add epochs, batch and protocol keys
RUN_YAML = ("model: MMLMF\ndataset: tiny\nlearner: sparse_adam\nlearning_rate: 0.01\nneg_sharing: batch\n"
            "num_negatives: 20\nmargins: [0.3, 0.5, 0.7]\nneg_weight: 10.0\nmetrics: [Recall, NDCG]\ntopk: [20]\n"
            "valid_metric: NDCG@20\nstate: ERROR\nshow_progress: False\n")


def write_tiny_data(folder):
    """60 users with 15 of 80 items each, at random (seeded)."""
    data = folder / "tiny"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["user_id:token\titem_id:token"] + [f"u{u}\ti{i}" for u in range(60) for i in rng.choice(80, 15, replace=False)]
    (data / "tiny.inter").write_text("\n".join(lines) + "\n")


def killed_at(monkeypatch, epoch, run):
    """Call ``run`` with training interrupted as it starts ``epoch``, where a killed process stops."""
    from recbole.trainer import Trainer

    train_epoch = Trainer._train_epoch

    def killing(self, train_data, epoch_idx, *args, **kwargs):
        if epoch_idx == epoch:
            raise KeyboardInterrupt
        return train_epoch(self, train_data, epoch_idx, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_train_epoch", killing)
        with pytest.raises(KeyboardInterrupt):
            run()


def test_curve_summary_and_per_user_scores_agree(tmp_path):
    write_tiny_data(tmp_path / "data")
    config = tmp_path / "run.yaml"
    config.write_text(RUN_YAML + "epochs: 3\ntrain_batch_size: 128\nstopping_step: 10\n")
    results = tmp_path / "results"
    row = time_to_quality.main(["--config", str(config), "--results", str(results), "--label", "t",
                                f"--data_path={tmp_path / 'data'}"])
    curve = pd.read_csv(results / "t" / "curve.csv")
    assert list(curve.epoch) == [1, 2, 3] and curve.wall_s.is_monotonic_increasing
    best = curve.loc[curve["valid_ndcg@20"].idxmax()]
    summary = pd.read_csv(results / "results.csv").iloc[0]
    assert summary.best_epoch == best.epoch and summary["test_ndcg@20"] == pytest.approx(best["test_ndcg@20"])
    assert row["epoch_over_floor"] > 0
    per_user = pd.read_csv(results / "t" / "per_user_test.csv.gz")
    assert len(per_user) == 60 and per_user.user_id.str.startswith("u").all()
    # the per-user values average to the reported means (RecBole rounds to 4 places)
    assert per_user["recall@20"].mean() == pytest.approx(best["test_recall@20"], abs=6e-5)
    assert per_user["ndcg@20"].mean() == pytest.approx(best["test_ndcg@20"], abs=6e-5)


def write_fulltrain_data(folder):
    """The published protocol's two files for 40 users with 12 of 60 items each, half in each."""
    data = folder / "tiny"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pairs = [(u, i) for u in range(40) for i in rng.choice(60, 12, replace=False)]
    header = "user_id:token\titem_id:token"
    (data / "tiny.fulltrain.inter").write_text("\n".join([header] + [f"u{u}\ti{i}" for u, i in pairs[::2]]) + "\n")
    (data / "tiny.test.inter").write_text("\n".join([header] + [f"u{u}\ti{i}" for u, i in pairs[1::2]]) + "\n")


FULLTRAIN_YAML = RUN_YAML + "epochs: 50\ntrain_batch_size: 64\neval_args: {group_by: user, order: RO, mode: full}\n"


def test_fulltrain_trains_on_the_published_training_set_and_scores_test_once(tmp_path):
    write_fulltrain_data(tmp_path / "data")
    config = tmp_path / "run.yaml"
    config.write_text(FULLTRAIN_YAML)
    results = tmp_path / "results"
    row = time_to_quality.main(["--config", str(config), "--results", str(results), "--label", "f",
                                "--fulltrain_epochs", "3", f"--data_path={tmp_path / 'data'}"])
    assert row["protocol"] == "[fulltrain, test, test]" and row["epochs_run"] == 3  # not the yaml's 50
    assert row["stopped"] == "3 epochs, chosen on valid"
    curve = pd.read_csv(results / "f" / "curve.csv")
    assert len(curve) == 1 and curve.epoch[0] == 3  # one evaluation, at the end
    per_user = pd.read_csv(results / "f" / "per_user_test.csv.gz")
    assert len(per_user) == 40
    assert per_user["ndcg@20"].mean() == pytest.approx(row["test_ndcg@20"], abs=6e-5)
    assert pd.read_csv(results / "results.csv").label.tolist() == ["f"]


def test_an_interrupted_run_gets_its_row_from_its_curve(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: MMLMF\ndataset: tiny\nlearner: sparse_adam\nmetrics: [Recall, NDCG]\ntopk: [20]\n"
                      "valid_metric: NDCG@20\nstate: ERROR\n")
    results = tmp_path / "results"
    (results / "k").mkdir(parents=True)
    pd.DataFrame({"epoch": [2, 4, 6], "wall_s": [10.0, 20.0, 30.0], "cpu_s": [9.0, 18.0, 27.0],
                  "train_s": [8.0, 16.0, 24.0], "valid_ndcg@20": [0.1, 0.3, 0.2], "test_recall@20": [0.2, 0.4, 0.5],
                  "test_ndcg@20": [0.05, 0.15, 0.2]}).to_csv(results / "k" / "curve.csv", index=False)
    row = time_to_quality.main(["--config", str(config), "--results", str(results), "--label", "k", "--from_curve",
                                f"--data_path={tmp_path}"])
    # the best validation (epoch 4) decides, not the last epoch
    assert (row["best_epoch"], row["epochs_run"], row["test_recall@20"], row["epoch_s"]) == (4, 6, 0.4, 4.0)
    assert row["stopped"] == "interrupted after epoch 6; row from its curve"
    assert pd.read_csv(results / "results.csv").label.tolist() == ["k"]


def test_a_killed_run_goes_on_to_the_curve_and_row_of_the_run_never_killed(tmp_path, monkeypatch):
    from recbole_mml import run_state

    write_tiny_data(tmp_path / "data")
    config = tmp_path / "run.yaml"
    config.write_text(RUN_YAML + "epochs: 6\ntrain_batch_size: 128\nstopping_step: 10\n")
    monkeypatch.setattr(run_state, "SAVE_EVERY_S", 0.0)
    monkeypatch.setattr(time_to_quality, "floor_epoch", lambda *args: 1.0)  # the floor is timed, not compared

    def main(results):
        return time_to_quality.main(["--config", str(config), "--results", str(results), "--label", "t",
                                     f"--data_path={tmp_path / 'data'}"])

    whole = main(tmp_path / "whole")
    killed_at(monkeypatch, 4, lambda: main(tmp_path / "killed"))
    assert (tmp_path / "killed" / "t" / "run_state").is_dir() and not (tmp_path / "killed" / "results.csv").exists()
    resumed = main(tmp_path / "killed")

    columns = ["epoch", "valid_recall@20", "valid_ndcg@20", "test_recall@20", "test_ndcg@20"]
    curves = [pd.read_csv(tmp_path / run / "t" / "curve.csv")[columns] for run in ("whole", "killed")]
    pd.testing.assert_frame_equal(*curves)
    assert list(curves[1].epoch) == [1, 2, 3, 4, 5, 6]
    for key in ("epochs_run", "best_epoch", "test_recall@20", "test_ndcg@20"):
        assert resumed[key] == whole[key], key
    per_user = [pd.read_csv(tmp_path / run / "t" / "per_user_test.csv.gz") for run in ("whole", "killed")]
    pd.testing.assert_frame_equal(*per_user)
    assert not (tmp_path / "killed" / "t" / "run_state").exists()
    clock = pd.read_csv(tmp_path / "killed" / "t" / "curve.csv").wall_s
    assert clock.is_monotonic_increasing  # the clock went on from the killed attempt's, not from zero


def test_a_killed_fulltrain_run_goes_on_to_the_row_of_the_run_never_killed(tmp_path, monkeypatch):
    from recbole.trainer import Trainer

    from recbole_mml import run_state

    write_fulltrain_data(tmp_path / "data")
    config = tmp_path / "run.yaml"
    config.write_text(FULLTRAIN_YAML)
    monkeypatch.setattr(run_state, "SAVE_EVERY_S", 0.0)

    def main(results):
        return time_to_quality.main(["--config", str(config), "--results", str(results), "--label", "f",
                                     "--fulltrain_epochs", "5", f"--data_path={tmp_path / 'data'}"])

    whole = main(tmp_path / "whole")
    killed_at(monkeypatch, 3, lambda: main(tmp_path / "killed"))
    train_epoch = Trainer._train_epoch
    saved = run_state.progress(str(tmp_path / "killed" / "f" / "run_state"))
    assert saved["epoch"] == 3 and saved["wall_s"] > 0
    trained = []

    def recording(self, train_data, epoch_idx, *args, **kwargs):
        trained.append(epoch_idx)
        return train_epoch(self, train_data, epoch_idx, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_train_epoch", recording)
        resumed = main(tmp_path / "killed")
    assert trained == [3, 4]  # epochs 0-2 were not trained again
    for key in ("epochs_run", "test_recall@20", "test_ndcg@20"):
        assert resumed[key] == whole[key], key
    per_user = [pd.read_csv(tmp_path / run / "f" / "per_user_test.csv.gz") for run in ("whole", "killed")]
    pd.testing.assert_frame_equal(*per_user)
    assert not (tmp_path / "killed" / "f" / "run_state").exists()
    assert resumed["wall_s"] >= round(saved["wall_s"], 1)  # the killed attempt's seconds count
