"""The BENCHMARKS.md generator: tables and paired tests from committed results, hand-written text kept."""

import importlib.util
import os
import re
import signal
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recbole_mml import run_state

from conftest import ROOT

spec = importlib.util.spec_from_file_location("report", os.path.join(ROOT, "benchmarks", "report.py"))
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


def run_row(label, loss_type, sharing="batch", pool=None, seed=2020, recall=0.1, ndcg=0.05, epoch_s=10.0):
    return {"label": label, "dataset": "gowalla", "model": "MMLMF", "loss_type": loss_type, "neg_sharing": sharing,
            "num_negatives": 100, "neg_pool_size": pool, "learner": "sparse_adam", "learning_rate": 0.005,
            "train_batch_size": 1024, "threads": 1, "seed": seed, "epochs_run": 4, "best_epoch": 4,
            "best_valid_ndcg@20": 0.1, "test_recall@20": recall, "test_ndcg@20": ndcg, "time_to_best_s": 120.0,
            "wall_s": 130.0, "cpu_s": 125.0, "epoch_s": epoch_s, "eval_s": 3.0, "floor_epoch_s": 8.0,
            "epoch_over_floor": epoch_s / 8.0, "stopped": "early stopping or epochs", "config": "c.yaml",
            "overrides": ""}


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    ttq = folder / "time_to_quality"
    rows = [run_row("g-mml", "MML"), run_row("g-ccl", "CCL"),
            run_row("pool-a-s1", "MML", "pool", 500, 2020, 0.12, epoch_s=12.0),
            run_row("pool-a-s2", "MML", "pool", 500, 2021, 0.14, epoch_s=14.0),
            run_row("pool-b-s1", "MML", "batch", None, 2020, 0.10, epoch_s=10.0),
            run_row("pool-b-s2", "MML", "batch", None, 2021, 0.10, epoch_s=10.0)]
    ttq.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(ttq / "results.csv", index=False)
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(200)]
    for label, shift in (("g-mml", 0.05), ("g-ccl", 0.0)):
        (ttq / label).mkdir()
        pd.DataFrame({"epoch": [2, 4], "wall_s": [60.0, 120.0], "test_recall@20": [0.05, 0.1]}).to_csv(
            ttq / label / "curve.csv", index=False)
        base = np.random.default_rng(1).random(200)
        pd.DataFrame({"user_id": users, "recall@20": base + shift + rng.normal(0, 0.01, 200),
                      "ndcg@20": base / 2 + shift + rng.normal(0, 0.01, 200)}).to_csv(ttq / label / "per_user_test.csv.gz", index=False)
    learners = folder / "learners"
    learners.mkdir()
    pd.DataFrame([run_row("g-sparse", "MML"), {**run_row("g-dense", "MML"), "learner": "adam"}]).to_csv(
        learners / "results.csv", index=False)
    for label in ("g-sparse", "g-dense"):
        (learners / label).mkdir()
        pd.DataFrame({"epoch": [1, 2], "wall_s": [60.0, 120.0], "cpu_s": [55.0, 110.0],
                      "test_recall@20": [0.05, 0.1]}).to_csv(learners / label / "curve.csv", index=False)
    (folder / "bpr_lr").mkdir()
    pd.DataFrame([{**run_row("g-bpr-lr0.001", "BPR"), "learning_rate": 0.001, "best_valid_ndcg@20": 0.08}]).to_csv(
        folder / "bpr_lr" / "results.csv", index=False)
    (folder / "ml-1m_converged").mkdir()
    pd.DataFrame([{"run_id": f"{label}|ml-1m|seed={seed}", "label": label, "model": label, "dataset": "ml-1m",
                   "seed": seed, "test_recall@20": recall + 0.001 * seed, "test_ndcg@20": recall,
                   "epochs_run": 30, "mean_epoch_time_s": 2.0, "wall_time_s": 60.0}
                  for label, recall in (("BPR", 0.2), ("MMLMF", 0.25)) for seed in (1, 2, 4)]
                 + [{"run_id": f"ENMF|ml-1m|seed={seed}", "label": "ENMF", "model": "ENMF", "dataset": "ml-1m",
                     "seed": seed, "test_recall@20": 0.21, "test_ndcg@20": 0.2, "best_valid_score": 0.185,
                     "epochs_run": 300, "mean_epoch_time_s": 9.0, "wall_time_s": 4200.0} for seed in (2020, 2021)]
                 ).to_csv(
        folder / "ml-1m_converged" / "results.csv", index=False)
    (folder / "ml-1m_enmf_lr").mkdir()
    pd.DataFrame([{"run_id": f"ENMF-lr{lr}|ml-1m|seed=2020", "label": f"ENMF-lr{lr}", "model": "ENMF",
                   "dataset": "ml-1m", "seed": 2020, "test_recall@20": 0.24, "test_ndcg@20": 0.36,
                   "best_valid_score": valid, "epochs_run": epochs, "wall_time_s": 600.0}
                  for lr, valid, epochs in (("0.01", 0.18, 40), ("0.003", 0.19, 60), ("0.001", 0.186, 300))]).to_csv(
        folder / "ml-1m_enmf_lr" / "results.csv", index=False)
    (folder / "gowalla_converged").mkdir()
    pd.DataFrame([{"run_id": f"{label}|gowalla|seed={seed}", "label": label, "model": label, "dataset": "gowalla",
                   "seed": seed, "test_recall@20": recall + 0.001 * (seed - 2020), "test_ndcg@20": recall / 2,
                   "epochs_run": 40, "mean_epoch_time_s": 30.0, "wall_time_s": 1300.0}
                  for label, recall in (("BPR", 0.15), ("MMLSimpleX", 0.17)) for seed in (2020, 2021)]).to_csv(
        folder / "gowalla_converged" / "results.csv", index=False)
    (folder / "epoch_vs_floor").mkdir()
    pd.DataFrame({"run": ["MMLMF learner=sparse_adam"], "epoch_s": [11.0], "over_sparse_floor": [1.1]}).to_csv(
        folder / "epoch_vs_floor" / "gowalla.csv", index=False)
    for key, label, on in (("fused_optimizer", "BPR", 0.02), ("csr_adjacency", "LightGCN", 0.03)):
        (folder / key).mkdir()
        pd.DataFrame({"label": [label], "step_s": [0.06], "on_step_s": [on], "speedup": [2.5]}).to_csv(
            folder / key / "gowalla.csv", index=False)
    return folder


def test_report_writes_tables_and_user_level_tests_and_keeps_the_hand_written_text(results, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "ROOT", str(tmp_path))
    (tmp_path / "docs").mkdir()
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nhand-written intro\n")
    report.main(["--results", str(results), "--out", str(out)])
    report.main(["--results", str(results), "--out", str(out)])  # a second run replaces, never duplicates
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written intro\n")
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    fused = text.split("## Fused optimizer", 1)[1].split("## CSR adjacency")[0]  # each switch's CSV, as a table
    assert "**gowalla**" in fused and re.search(r"\| BPR +\| +0\.06 \| +0\.02 \| +2\.5 \|", fused)
    csr = text.split("## CSR adjacency for RecBole's LightGCN", 1)[1].split(report.END)[0]
    assert "--key csr_adjacency" in csr and re.search(r"\| LightGCN +\| +0\.06 \| +0\.03 \| +2\.5 \|", csr)
    assert "## Matrix products" not in text  # no table, no section
    assert "| g-mml | gowalla | [train, valid, test] | MML | 100 shared |" in text
    assert (tmp_path / "docs" / "time_to_quality.png").stat().st_size > 0
    # the pool sweep: mean +- std over the two seeds, epoch time over the shared form's
    assert "| 100 per row from a pool of 500 | 2 | 4 | 0.1300 ± 0.0141 |" in text
    assert "| 1.30 | 2020: 12.0 (1.20x), 2021: 14.0 (1.40x) |" in text  # each seed against its own shared run
    # paired over users, MML against the run that differs only in its loss
    mml = pd.read_csv(results / "time_to_quality" / "g-mml" / "per_user_test.csv.gz")
    ccl = pd.read_csv(results / "time_to_quality" / "g-ccl" / "per_user_test.csv.gz")
    tests = report.paired_user_tests(pd.read_csv(results / "time_to_quality" / "results.csv").iloc[:2],
                                     str(results / "time_to_quality"))
    recall = tests[tests.metric == "recall@20"].iloc[0]
    assert (recall.a, recall.b, recall.users) == ("g-mml", "g-ccl", 200)
    assert recall.ttest_p == pytest.approx(stats.ttest_rel(mml["recall@20"], ccl["recall@20"]).pvalue)
    assert recall["diff"] == pytest.approx(0.05, abs=0.01) and recall.ttest_p < 1e-6
    assert "MMLMF learner=sparse_adam" in text
    assert "## Sparse against dense Adam at equal time" in text and "| g-dense | gowalla |" in text
    assert (tmp_path / "docs" / "learners.png").stat().st_size > 0
    bpr = text.split("## MF-BPR's learning rate")[1].split("## ")[0]
    assert "| g-bpr-lr0.001 | gowalla | [train, valid, test] | BPR | 100 shared | sparse_adam, 0.001 |" in bpr
    # ml-1m: the benchmark tool's rows, mean +- std over seeds, tested against the yaml's baselines that ran (BPR)
    ml1m = text.split("## ml-1m trained to early stopping")[1].split("## ")[0]
    assert "seeds 1, 2, 4, 2020, 2021 (8 runs)" in ml1m and "| ml-1m | MMLMF | **0.2523 ± 0.0015** | **0.2500 ± 0.0000** |" in ml1m
    assert "| ml-1m | MMLMF | BPR | recall@20 | 3 | 0.0500 | n/a |" in ml1m  # constant differences: t undefined
    assert "| ml-1m | MMLMF | 2020, 2021, 2022, 2023, 2024 | 1 | 3 finished seed(s) |" in ml1m  # the yaml's seeds
    # ENMF's learning rate: each rate from its yaml, beside the converged row of the same seed (not 2021's),
    # the best valid score first
    enmf = text.split("### ENMF's learning rate")[1].split("## ")[0]
    lines = [line for line in enmf.splitlines() if line.startswith("| ENMF")]
    assert lines == ["| ENMF-lr0.003 | 2020 | 0.003 | 60 | 0.1900 | 0.2400 | 0.3600 | 10 |",
                     "| ENMF-lr0.001 | 2020 | 0.001 | 300 | 0.1860 | 0.2400 | 0.3600 | 10 |",
                     "| ENMF | 2020 | 0.003 | 300 | 0.1850 | 0.2100 | 0.2000 | 70 |",
                     "| ENMF-lr0.01 | 2020 | 0.01 | 40 | 0.1800 | 0.2400 | 0.3600 | 10 |"]
    assert "**Not run yet:**" not in enmf  # every one of the yaml's rates has run
    # the real data sets: a block for Gowalla, which has rows, tested against BPR; none for Yelp2018
    real = text.split("## RecBole's baselines on Gowalla and Yelp2018, trained to early stopping")[1].split("\n## ")[0]
    assert "### gowalla" in real and "### yelp2018" not in real and "seeds 2020, 2021 (4 runs)" in real
    assert "| gowalla | MMLSimpleX | **0.1705 ± 0.0007** |" in real
    assert "| gowalla | MMLSimpleX | BPR | recall@20 | 2 | 0.0200 |" in real
    assert "| gowalla | LightGCN | 2020, 2021, 2022 | not measured | no finished seed |" in real
    enmf_lr = results / "ml-1m_enmf_lr" / "results.csv"
    pd.read_csv(enmf_lr).iloc[:1].to_csv(enmf_lr, index=False)
    converged = report.load_spec(os.path.join(report.CONFIGS, f"{report.CONVERGED}.yaml"))
    block = "\n".join(report.learning_rate_block(str(results), converged,
                                                  pd.read_csv(results / "ml-1m_converged" / "results.csv")))
    assert "| ml-1m | ENMF-lr0.003 | 2020 | not measured | no finished seed |" in block
    assert "| ENMF-lr0.003 | 2020 | 0.003 |" not in block


spec_claim = importlib.util.spec_from_file_location("negatives_claim", os.path.join(ROOT, "benchmarks", "negatives_claim.py"))
claim = importlib.util.module_from_spec(spec_claim)
spec_claim.loader.exec_module(claim)


def claim_row(dataset, loss, form, seed, recall, stopped="early stopping or epochs"):
    sharing, n, pool = claim.FORMS[form]
    row = run_row(claim.label(dataset, loss, form, seed), loss, sharing, pool, seed, recall, recall / 2)
    return {**row, "dataset": dataset, "num_negatives": n, "stopped": stopped, "epochs_run": 30, "best_epoch": 20}


def test_claim_plan_puts_the_claims_rows_first_and_resumes_from_finished_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(claim, "CCL_TUNED", {"gowalla": (0.8, 100), "yelp2018": (0.9, 50)})
    plan = claim.plan()
    assert [p[0] for p in plan[:4]] == ["gowalla-mml-row10-s2020", "gowalla-ccl-row10-s2020",
                                        "yelp2018-mml-row10-s2020", "yelp2018-ccl-row10-s2020"]
    # per seed: MML, CCL at 10, 100 and 800; MF-BPR; SSM, BSL at 100 and 800; CCL-tuned at 10, 100 and
    # 800. Then, retrained on fulltrain: MML, CCL and CCL-tuned at each N and BSL at 800, the first seed's
    assert len(plan) == len({p[0] for p in plan}) == 3 * (2 * 2 * 3 + 2 + 2 * 2 * 2 + 2 * 3) + 2 * (3 * 3 + 1)
    assert {p[0] for p in plan if p[0].endswith(claim.FULLTRAIN) and p[2] not in ("MML", "CCL", "CCL-tuned")} == {
        "gowalla-bsl-shared800-s2020-fulltrain", "yelp2018-bsl-shared800-s2020-fulltrain"}
    # CCL-tuned: CCL at the dataset's setting chosen on valid, after every run of the published settings
    assert claim.command("gowalla", "CCL-tuned", "row10", 2021)[-6:] == [
        "--neg_sharing=row", "--num_negatives=10", "--seed=2021", "--loss_type=CCL", "--ccl_margin=0.8",
        "--neg_weight=100"]
    assert claim.command("gowalla", "CCL", "row10", 2021)[-2:] == ["--ccl_margin=0.9", "--neg_weight=150"]
    tuned_at = [i for i, p in enumerate(plan) if p[2] == "CCL-tuned"]
    assert len(tuned_at) == 24 and min(tuned_at) > max(i for i, p in enumerate(plan) if p[2] != "CCL-tuned")
    assert plan[tuned_at[0]][0] == "gowalla-ccl-tuned-row10-s2020"
    # where the setting chosen on valid is SimpleX's, the CCL rows stand for it: no runs of their own
    monkeypatch.setattr(claim, "CCL_TUNED", {"gowalla": claim.SIMPLEX_CCL, "yelp2018": (0.9, 50)})
    assert {p[1] for p in claim.plan() if p[2] == "CCL-tuned"} == {"yelp2018"}
    monkeypatch.undo()
    # MF-BPR: one negative per row, dot product, the published L2 weight; after the claim's MML and CCL runs
    assert claim.command("gowalla", "BPR", "row1", 2020)[-6:] == [
        "--neg_sharing=row", "--num_negatives=1", "--seed=2020", "--loss_type=BPR", "--reg_weight=0.0001",
        "--learning_rate=0.001"]
    bpr_at = [i for i, p in enumerate(plan) if p[2] == "BPR"]
    assert len(bpr_at) == 6 and min(bpr_at) > max(i for i, p in enumerate(plan) if p[2] in ("MML", "CCL"))
    assert "--neg_pool_size=2000" in claim.command("gowalla", "CCL", "pool100", 2021)
    assert "--loss_type=CCL" in claim.command("gowalla", "CCL", "pool100", 2021)
    # SSM and BSL take the BSL authors' temperatures of the dataset
    assert claim.command("yelp2018", "BSL", "pool100", 2020)[-4:-1] == ["--loss_type=BSL", "--temperature=0.11",
                                                                      "--bsl_neg_power=1.1"]
    assert "--temperature=0.08" in claim.command("gowalla", "SSM", "pool100", 2020)
    results = tmp_path / "negatives"
    results.mkdir()
    pd.DataFrame([claim_row("gowalla", "MML", "row10", 2020, 0.15),
                  claim_row("gowalla", "CCL", "row10", 2020, 0.14, "interrupted after epoch 3; row from its curve"),
                  {**claim_row("gowalla", "MML", "row10", 2021, 0.15), "device": "NVIDIA H200", "wall_s": 10.0}]
                 ).to_csv(results / "results.csv", index=False)
    status = claim.status(str(results)).set_index("label")
    assert status.loc["gowalla-mml-row10-s2020", "state"] == "done"
    assert status.loc["gowalla-ccl-row10-s2020", "state"] == "pending"  # interrupted runs run again
    # the estimate is a CPU thread's: the GPU run's 10 s do not count
    assert status.loc["gowalla-ccl-row10-s2020", "est_min"] == pytest.approx(130.0 / 60, abs=0.05)
    commands = []
    monkeypatch.setattr(claim.subprocess, "Popen", fake_process(lambda args: commands.append(args) or 0))
    claim.main(["--results", str(results), "--dataset", "gowalla", "--only", "CCL", "--max_runs", "2"])
    labels = [args[args.index("--label") + 1] for args in commands]
    assert labels == ["gowalla-ccl-row10-s2020", "gowalla-ccl-pool100-s2020"]
    # a finished run is retrained on fulltrain for the epochs early stopping chose; one without a row is not
    commands.clear()
    claim.main(["--results", str(results), "--dataset", "gowalla", "--only", "MML", "--forms", "row10", "pool100"])
    retrain = [args for args in commands if "--fulltrain_epochs" in args]
    assert [args[args.index("--label") + 1] for args in retrain] == ["gowalla-mml-row10-s2020-fulltrain"]
    assert retrain[0][retrain[0].index("--fulltrain_epochs") + 1] == "20"


def test_claim_estimates_a_pending_run_from_the_nearest_measured_runs(tmp_path):
    results = tmp_path / "negatives"
    results.mkdir()
    pd.DataFrame([{**claim_row("gowalla", "MML", "row10", 2020, 0.15), "wall_s": 600.0},
                  {**claim_row("gowalla", "MML", "pool100", 2020, 0.17), "wall_s": 1200.0},
                  {**claim_row("gowalla", "MML", "pool100", 2022, 0.17), "wall_s": 1800.0},
                  {**claim_row("gowalla", "SSM", "pool100", 2020, 0.15), "wall_s": 600.0},
                  {**claim_row("yelp2018", "MML", "row10", 2020, 0.06), "wall_s": 900.0}]
                 ).to_csv(results / "results.csv", index=False)
    (tmp_path / "time_to_quality").mkdir()
    pd.DataFrame([{**run_row("g-b1000", "MML"), "num_negatives": 1000, "wall_s": 1800.0,
                   "protocol": "[train, valid, test]"}]).to_csv(tmp_path / "time_to_quality" / "results.csv", index=False)
    status = claim.status(str(results)).set_index("label")
    # same dataset, negatives and loss first: the mean of its finished runs
    assert status.loc["gowalla-mml-pool100-s2021", "est_min"] == pytest.approx(25.0)
    assert "and loss" in status.loc["gowalla-mml-pool100-s2021", "est_basis"]
    # same dataset and negatives, any loss: the mean of the finished runs
    assert status.loc["gowalla-ccl-pool100-s2020", "est_min"] == pytest.approx(20.0)
    # Yelp2018 at pool100: its row10 time scaled by the 2x Gowalla measured from row10 to pool100
    assert status.loc["yelp2018-mml-pool100-s2020", "est_min"] == pytest.approx(30.0)
    assert "gowalla's pool100 / row10" in status.loc["yelp2018-mml-pool100-s2020", "est_basis"]
    # 800 shared: the fast config's own run with 1000 shared; none on Yelp2018
    assert status.loc["gowalla-mml-shared800-s2020", "est_min"] == pytest.approx(30.0)
    assert pd.isna(status.loc["yelp2018-mml-shared800-s2020", "est_min"])
    # a retraining whose valid run has not finished: that run's estimate, as an upper bound
    assert status.loc["yelp2018-mml-pool100-s2020-fulltrain", "est_min"] == pytest.approx(30.0)
    assert "upper bound" in status.loc["yelp2018-mml-pool100-s2020-fulltrain", "est_basis"]
    assert "pending" not in set(status.loc[["gowalla-mml-row10-s2020"], "state"])


def test_claim_lists_a_stopped_run_with_a_saved_state_as_under_way_and_runs_it_on(tmp_path, monkeypatch):
    results = tmp_path / "negatives"
    results.mkdir()
    pd.DataFrame([{**claim_row("gowalla", "MML", "row10", 2020, 0.15), "wall_s": 600.0}]
                 ).to_csv(results / "results.csv", index=False)
    folder = results / "gowalla-mml-row10-s2021" / "run_state"
    folder.mkdir(parents=True)
    (folder / run_state.STATE_FILE).write_bytes(b"")
    (folder / run_state.PROGRESS_FILE).write_text('{"epoch": 12, "wall_s": 150.0}')
    status = claim.status(str(results)).set_index("label")
    run = status.loc["gowalla-mml-row10-s2021"]
    assert run.state == "under way" and run.saved_epoch == 12
    assert run.est_min == pytest.approx(10.0) and run.left_min == pytest.approx(7.5)
    assert status.loc["gowalla-mml-row10-s2022", "state"] == "pending"
    commands = []
    monkeypatch.setattr(claim.subprocess, "Popen", fake_process(lambda args: commands.append(args) or 0))
    claim.main(["--results", str(results), "--labels", "gowalla-mml-row10-s2021"])
    assert [args[args.index("--label") + 1] for args in commands] == ["gowalla-mml-row10-s2021"]
    table = report.claim_pending_table(str(tmp_path))
    assert "| gowalla | row10 | [train, valid, test] | MML | 2021 (under way: resumes at epoch 12, about 8 min left), 2022 | 10 |" in table


def test_claim_section_averages_seeds_tests_users_and_lists_what_is_pending(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "ROOT", str(tmp_path))
    (tmp_path / "docs").mkdir()
    folder = tmp_path / "results" / "negatives"
    folder.mkdir(parents=True)
    rows = [claim_row("gowalla", "MML", "row10", 2020, 0.16),
            {**claim_row("gowalla", "MML", "row10", 2021, 0.18), "device": "NVIDIA H200", "wall_s": 60.0},
            claim_row("gowalla", "CCL", "row10", 2020, 0.15), claim_row("gowalla", "CCL", "row10", 2021, 0.15),
            claim_row("gowalla", "CCL", "pool100", 2020, 0.17), claim_row("gowalla", "MML", "pool100", 2020, 0.18),
            claim_row("gowalla", "CCL", "shared800", 2020, 0.18), {**claim_row("gowalla", "BPR", "row1", 2020, 0.14), "learning_rate": 0.001},
            {**claim_row("gowalla", "CCL-tuned", "row10", 2020, 0.155), "loss_type": "CCL"},  # trains as CCL
            claim_row("yelp2018", "CCL", "row10", 2020, 0.05, "interrupted after epoch 30; row from its curve"),
            {**claim_row("gowalla", "CCL", "row10", 2020, 0.15), "label": "gowalla-ccl-row10-s2020" + claim.FULLTRAIN,
             "protocol": "[fulltrain, test, test]"},
            {**claim_row("gowalla", "CCL-tuned", "row10", 2020, 0.16), "loss_type": "CCL", "protocol": "[fulltrain, test, test]",
             "label": "gowalla-ccl-tuned-row10-s2020" + claim.FULLTRAIN}]
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    users = [f"u{i}" for i in range(100)]
    base = np.random.default_rng(1).random(100)
    for row in rows:
        (folder / row["label"]).mkdir()
        shift = 0.02 if row["loss_type"] == "MML" else 0.0
        noise = np.random.default_rng(row["seed"]).normal(0, 0.01, 100)
        pd.DataFrame({"user_id": users, "recall@20": base + shift + noise, "ndcg@20": base / 2 + shift}).to_csv(
            folder / row["label"] / "per_user_test.csv.gz", index=False)
        pd.DataFrame({"epoch": [2, 4], "wall_s": [60.0, 120.0], "cpu_s": [50.0, 100.0],
                      "test_recall@20": [0.05, row["test_recall@20"]]}).to_csv(folder / row["label"] / "curve.csv", index=False)
    timed = []
    monkeypatch.setattr(report, "plot", lambda runs, folder, out, series: timed.extend(runs.label))
    text = "\n\n".join(report.claim_section(str(tmp_path / "results")))
    glance = text.split("**At a glance**")[1].split("| dataset | negatives |")[0]  # loss x negatives, seed means
    assert "| dataset | loss | 1 per row | 10 per row | 100 per row from a pool of 2000 | 800 shared |" in glance
    assert "| gowalla | MML |  | 0.1700 / 0.0850 (2) | 0.1800 / 0.0900 (1) |  |" in glance
    assert "| gowalla | CCL |  | 0.1500 / 0.0750 (2) | 0.1700 / 0.0850 (1) | 0.1800 / 0.0900 (1) |" in glance
    assert "| gowalla | BPR | 0.1400 / 0.0700 (1) |  |  |  |" in glance and "yelp2018 |" not in glance
    assert "| gowalla | CCL-tuned |  | 0.1550 / 0.0775 (1) |  |  |" in glance  # a loss of its own, after CCL
    assert glance.index("| gowalla | CCL |") < glance.index("| gowalla | CCL-tuned |") < glance.index("| gowalla | BPR |")
    assert "| gowalla | gowalla-mml-row10-s2020 | gowalla-ccl-tuned-row10-s2020 | recall@20 | 100 |" in text
    assert "| gowalla | 10 per row | [train, valid, test] | MML | 2 | 30 (20), 30 (20) | 0.1700 ± 0.0141 |" in text
    assert "| 2 (cpu), 1 (H200) |" in text  # each seed's minutes with the device they were measured on
    assert "gowalla-mml-row10-s2021" not in timed and "gowalla-mml-row10-s2020" in timed  # CPU minutes only
    assert "| gowalla | 10 per row | [train, valid, test] | CCL | 2 |" in text
    assert "| yelp2018 |" not in text.split("Interrupted")[0]  # an interrupted run is no converged row
    assert "yelp2018-ccl-row10-s2020 at epoch 30 (test Recall@20 / NDCG@20 0.0500 / 0.0250" in text
    assert "| gowalla | gowalla-mml-row10-s2020 | gowalla-ccl-row10-s2020 | recall@20 | 100 |" in text
    assert "| gowalla | gowalla-mml-row10-s2021 | gowalla-ccl-row10-s2021 | recall@20 | 100 |" in text
    verdict = text.split("**In one table**")[1].split("Paired over")[0]  # the tests summed up per comparison
    assert "| gowalla | [train, valid, test] | MML, 10 per row | CCL, 10 per row | recall@20 | 2 | +0.0200 | 2 | 0 |" in verdict
    assert "| MML, 10 per row | CCL, 100 per row from a pool of 2000 | recall@20 | 1 | +0.0200 | 1 | 0 |" in verdict
    # MML against CCL with more negatives, same seed only, in a table of its own after the same-N tests
    same_n, fewer = text.split("MML against the other losses with more negatives per positive")
    for a, b in [("row10", "pool100"), ("row10", "shared800"), ("pool100", "shared800")]:
        assert f"| gowalla | gowalla-mml-{a}-s2020 | gowalla-ccl-{b}-s2020 | recall@20 | 100 |" in fewer
        assert f"| gowalla-mml-{a}-s2020 | gowalla-ccl-{b}-s2020 |" not in same_n
    assert "gowalla-mml-pool100-s2020 | gowalla-ccl-pool100" not in fewer and "gowalla-mml-row10-s2021 | gowalla-ccl-pool100" not in text
    # MF-BPR, at one negative per row, against MML at every N of the same seed, in a table of its own
    fewer, against_bpr = fewer.split("MML against MF-BPR")
    assert "bpr" not in fewer and "gowalla-mml-row10-s2021 | gowalla-bpr" not in against_bpr
    for form in ("row10", "pool100"):
        assert f"| gowalla | gowalla-mml-{form}-s2020 | gowalla-bpr-row1-s2020 | recall@20 | 100 |" in against_bpr
    assert "| MML, 100 per row from a pool of 2000 | BPR, 1 per row | recall@20 | 1 | +0.0200 | 1 | 0 |" in verdict
    assert "| gowalla | 1 per row | [train, valid, test] | BPR | 1 |" in text
    assert (tmp_path / "docs" / "negatives_gowalla.png").stat().st_size > 0
    assert "| gowalla | row10 | [train, valid, test] | MML | 2022 |" in text
    assert "| yelp2018 | row10 | [train, valid, test] | MML | 2020, 2021, 2022 | not measured yet | not measured yet |" in text
    assert "runs; those with an estimate" in text
    assert "| gowalla | row10 | [fulltrain, test, test] | MML | 2020 | 1 |" in text  # 20 of the 30 epochs in 130 s
    # the retrained run beside the published number of its loss and the best published MF number
    published = text.split("**Under the published protocol**")[1].split("![")[0]
    assert "| gowalla | CCL | 10 per row | 2020 | 30 | 0.1500 / 0.0750 | 0.1837 / 0.1493 | 82% / 50% | 80% / 47% |" in published
    # CCL at its tuned setting is still CCL: beside MF-CCL's published number
    assert "| gowalla | CCL-tuned | 10 per row | 2020 | 30 | 0.1600 / 0.0800 | 0.1837 / 0.1493 | 87% / 54% |" in published
    assert published.count("| gowalla |") == 2  # the runs selected on valid are not in it


def test_time_plot_draws_the_seeds_of_one_setting_as_one_series(tmp_path):
    rows = [claim_row("gowalla", "MML", "row10", 2020, 0.16), claim_row("gowalla", "MML", "row10", 2021, 0.17),
            claim_row("gowalla", "CCL", "row10", 2020, 0.15), claim_row("yelp2018", "CCL", "pool100", 2020, 0.05)]
    for row in rows:
        (tmp_path / row["label"]).mkdir()
        pd.DataFrame({"epoch": [2, 4], "wall_s": [60.0, 120.0], "cpu_s": [50.0, 100.0],
                      "test_recall@20": [0.05, row["test_recall@20"]]}).to_csv(tmp_path / row["label"] / "curve.csv", index=False)
    runs = pd.DataFrame(rows)
    out = tmp_path / "time.png"
    legends = report.plot(runs, str(tmp_path), str(out), series=lambda row: f"{row.loss_type}, {report.negatives(row)}")
    assert legends["gowalla"] == ["MML, 10 per row (2 runs)", "CCL, 10 per row", "best published (test-selected)"]
    assert legends["yelp2018"][0] == "CCL, 100 per row from a pool of 2000"
    assert out.stat().st_size > 0
    assert report.plot(runs, str(tmp_path), str(out))["gowalla"][:3] == [r["label"] for r in rows[:3]]  # one per run


def test_paired_tables_read_by_dataset_protocol_negatives_and_seed():
    rows = pd.DataFrame([claim_row("yelp2018", "MML", "row10", 2020, 0.06),
                         {**claim_row("gowalla", "MML", "row10", 2020, 0.16), "protocol": "[fulltrain, test, test]"},
                         claim_row("gowalla", "MML", "pool100", 2020, 0.17),
                         claim_row("gowalla", "MML", "row10", 2021, 0.16),
                         claim_row("gowalla", "MML", "row10", 2020, 0.16)])
    ordered = report.in_reading_order(report.with_protocol(rows))
    assert [(r.dataset, r.num_negatives, r.seed, r.protocol) for r in ordered.itertuples()] == [
        ("gowalla", 10, 2020, "[train, valid, test]"), ("gowalla", 10, 2021, "[train, valid, test]"),
        ("gowalla", 100, 2020, "[train, valid, test]"), ("gowalla", 10, 2020, "[fulltrain, test, test]"),
        ("yelp2018", 10, 2020, "[train, valid, test]")]


def test_verdict_counts_the_seeds_each_side_wins_significantly():
    runs = pd.DataFrame([claim_row("gowalla", loss, form, seed, 0.1) for loss, form in (("MML", "row10"), ("CCL", "pool100"))
                         for seed in (2020, 2021, 2022)])
    runs = report.with_protocol(runs)
    tests = pd.DataFrame([{"dataset": "gowalla", "a": f"gowalla-mml-row10-s{seed}", "b": f"gowalla-ccl-pool100-s{seed}",
                           "metric": "ndcg@20", "diff": diff, "ttest_p": p}
                          for seed, diff, p in ((2020, -0.006, 1e-20), (2021, -0.004, 1e-10), (2022, 0.001, 0.3))])
    line = report.verdict_table(tests, runs).splitlines()[2]
    assert line == ("| gowalla | [train, valid, test] | MML, 10 per row | CCL, 100 per row from a pool of 2000 | ndcg@20 | "
                    "3 | -0.0030 | 0 | 2 | 0.3 |")


def fake_process(behave):
    """A stand-in for a run's process: waiting runs ``behave(args)``, which returns the exit code."""
    class Process:
        def __init__(self, args):
            self.args, self.returncode = args, None

        def wait(self):
            if self.returncode is None:
                self.returncode = behave(self.args)
            return self.returncode

        def poll(self):
            return self.returncode

        def terminate(self):
            raise AssertionError("no run is stopped unless the driver is")

    return Process


def test_claim_runs_two_at_a_time_and_starts_only_what_fits_the_hours(tmp_path, monkeypatch):
    results = tmp_path / "negatives"
    results.mkdir()
    pd.DataFrame([{**claim_row("gowalla", "MML", "row10", 2020, 0.15), "wall_s": 600.0}]).to_csv(
        results / "results.csv", index=False)
    running, most, ran = [], [], []

    def fake_run(args):
        name = args[args.index("--label") + 1]
        running.append(name)
        most.append(len(running))
        time.sleep(0.2)
        running.remove(name)
        ran.append(name)
        return 0

    monkeypatch.setattr(claim.subprocess, "Popen", fake_process(fake_run))
    gowalla_ccl = ["--results", str(results), "--dataset", "gowalla", "--only", "CCL", "--forms", "row10"]
    # each pending run is estimated at 10 minutes (the finished MML run): none fits in 0.1 hours
    assert claim.main(gowalla_ccl + ["--jobs", "2", "--hours", "0.1"]) == 0 and ran == []
    assert claim.main(gowalla_ccl + ["--jobs", "2", "--hours", "1"]) == 0
    assert sorted(ran) == [f"gowalla-ccl-row10-s{seed}" for seed in (2020, 2021, 2022)] and max(most) == 2


def test_claim_starts_no_run_after_a_failed_one_and_exits_1(tmp_path, monkeypatch, capsys):
    ran = []

    def failing(args):
        ran.append(args[args.index("--label") + 1])
        return 3

    monkeypatch.setattr(claim.subprocess, "Popen", fake_process(failing))
    assert claim.main(["--results", str(tmp_path), "--dataset", "yelp2018", "--only", "MML"]) == 1
    assert ran == ["yelp2018-mml-row10-s2020"]
    assert "run yelp2018-mml-row10-s2020 failed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        claim.main(["--jobs", "0"])
    assert "--jobs: expected an integer >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        claim.main(["--results", str(tmp_path), "--labels", "gowalla-mml-row10-s2020", "gowalla-mml-row99"])
    assert "--labels: not in the plan: gowalla-mml-row99" in capsys.readouterr().err


def test_a_terminated_claim_driver_stops_its_runs_and_says_how_to_go_on(tmp_path, monkeypatch, capsys):
    """SIGTERM to the driver ends the runs under way (they would train on, orphaned) and starts no other."""
    pids = tmp_path / "pids"
    sleeper = f"import os, time; open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n'); time.sleep(600)"
    monkeypatch.setattr(claim, "command", lambda *args, **kwargs: [sys.executable, "-c", sleeper])

    def terminate_when_both_run():
        deadline = time.time() + 60
        while not (pids.exists() and len(pids.read_text().split()) == 2) and time.time() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_when_both_run, daemon=True).start()
    assert claim.main(["--results", str(tmp_path), "--dataset", "gowalla", "--only", "MML", "--jobs", "2"]) == 1
    assert capsys.readouterr().err.strip().endswith("and the same command goes on from there")
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2  # no third run after the signal
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_ccl_setting_section_sets_each_setting_beside_the_claims_rows_and_tests_the_best_against_mml(tmp_path):
    results = tmp_path / "results"
    check, negatives = results / "ccl_setting", results / "negatives"
    ccl = "--neg_sharing=batch --num_negatives=100 --seed=2020 --loss_type=CCL"
    rows = [{**run_row("g-ccl-m0.8-w150", "CCL"), "best_valid_ndcg@20": 0.07, "overrides": f"{ccl} --ccl_margin=0.8 --neg_weight=150"},
            {**run_row("g-ccl-m0.9-w400", "CCL"), "best_valid_ndcg@20": 0.05, "overrides": f"{ccl} --ccl_margin=0.9 --neg_weight=400",
             "stopped": "interrupted after epoch 4; row from its curve"},
            # another seed: compared with that seed's MML only, and ahead of it on valid
            {**run_row("g-ccl-m0.9-w50-s2021", "CCL", seed=2021), "best_valid_ndcg@20": 0.095,
             "overrides": f"{ccl} --ccl_margin=0.9 --neg_weight=50"}]
    claimed = [{**run_row("g-ccl-s2020", "CCL"), "best_valid_ndcg@20": 0.06, "overrides": f"{ccl} --ccl_margin=0.9 --neg_weight=150"},
               {**run_row("g-mml-s2020", "MML"), "best_valid_ndcg@20": 0.08},
               {**run_row("g-mml-s2021", "MML", seed=2021), "best_valid_ndcg@20": 0.09},  # another seed
               {**run_row("g-mml-row", "MML", sharing="row"), "best_valid_ndcg@20": 0.09}]  # other negatives
    for folder, frame in ((check, rows), (negatives, claimed)):
        folder.mkdir(parents=True)
        pd.DataFrame(frame).to_csv(folder / "results.csv", index=False)
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(300)]
    scores, base = {}, rng.random(300)
    for folder, label, shift in ((check, "g-ccl-m0.8-w150", 0.0), (negatives, "g-mml-s2020", 0.02)):
        (folder / label).mkdir()
        scores[label] = pd.DataFrame({"user_id": users, "recall@20": base + shift + rng.normal(0, 0.005, 300),
                                      "ndcg@20": base / 2 + rng.normal(0, 0.005, 300)})
        scores[label].to_csv(folder / label / "per_user_test.csv.gz", index=False)
    text = "\n".join(report.ccl_setting_section(str(results)))
    lines = [line.split(" | ")[:4] + [line.split(" | ")[-1]] for line in text.splitlines() if line.startswith("| g-")]
    assert lines == [["| g-mml-s2020", "gowalla", "MML", "the author's", "the claim |"],
                     ["| g-ccl-m0.8-w150", "gowalla", "CCL", "0.8", "this check |"],
                     ["| g-ccl-s2020", "gowalla", "CCL", "0.9", "the claim |"],
                     ["| g-ccl-m0.9-w400", "gowalla", "CCL", "0.9", "this check |"],
                     ["| g-ccl-m0.9-w50-s2021", "gowalla", "CCL", "0.9", "this check |"],
                     ["| g-mml-s2021", "gowalla", "MML", "the author's", "the claim |"]]
    assert "| g-ccl-s2020 | gowalla | CCL | 0.9 | 150 | 100 shared | 2020 | 4 (4) | 0.0600 |" in text
    assert "| g-ccl-m0.9-w400 | gowalla | CCL | 0.9 | 400 | 100 shared | 2020 | 4 (4), stopped | 0.0500 |" in text
    p = stats.ttest_rel(scores["g-ccl-m0.8-w150"]["recall@20"], scores["g-mml-s2020"]["recall@20"]).pvalue
    assert ("gowalla, 100 shared, seed 2020: the best CCL setting on valid is `g-ccl-m0.8-w150` (valid NDCG@20 "
            "0.0700, MML 0.0800)") in text
    assert ("gowalla, 100 shared, seed 2021: the best CCL setting on valid is `g-ccl-m0.9-w50-s2021` (valid NDCG@20 "
            "0.0950, MML 0.0900); on test it reaches 0.1000 / 0.0500 against MML's 0.1000 / 0.0500.") in text
    diff = (scores["g-ccl-m0.8-w150"]["recall@20"] - scores["g-mml-s2020"]["recall@20"]).mean()
    assert f"over 300 test users: recall@20 {diff:+.4f}, " in text and diff < -0.015 and f"p = {p:.2g} (paired t)" in text
    assert report.ccl_setting_section(str(tmp_path / "none")) == []
