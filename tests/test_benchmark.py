"""The benchmark command: resumable runs, the statistics over seeds, the markdown table, the sweep plot."""

import glob
import math
import os
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from recbole_mml import run_state
from recbole_mml.benchmark.execute import run_subprocess
from recbole_mml.benchmark import report as bench_report
from recbole_mml.benchmark.report import markdown_table, write_report
from recbole_mml.benchmark.results import pending_runs, per_user_path, read_per_user, state_dir
from recbole_mml.benchmark.runner import run_benchmark
from recbole_mml.benchmark.spec import check_spec, load_spec, plan_runs
from recbole_mml.benchmark.stats import paired_tests, summarize, user_tests
from recbole_mml.cli import main as cli_main
from recbole_mml.errors import ConfigError
from recbole_mml.quick_start import build_config

from conftest import ROOT, TINY_DATA

COMMON = {"epochs": 1, "show_progress": False, "torch_num_threads": 1, "metrics": ["Recall", "NDCG"], "topk": [20],
          "valid_metric": "NDCG@20", "data_path": TINY_DATA}


def synthetic_results(sweep=False):
    """Three seeds of A, B and a baseline with known per-seed values."""
    rows = []
    values = {"A": [0.30, 0.32, 0.34], "B": [0.20, 0.21, 0.25], "base": [0.25, 0.26, 0.27]}
    for label, recalls in values.items():
        for seed, recall in zip([1, 2, 3], recalls):
            for n in ([10, 100] if sweep else [np.nan]):
                bump = 0.01 * np.log10(n) if sweep else 0.0
                rows.append({"run_id": f"{label}|{n}|{seed}", "label": label, "model": "MMLMF", "dataset": "toy",
                             "seed": seed, "sweep_key": "num_negatives" if sweep else "", "sweep_value": n,
                             "test_recall@20": recall + bump, "test_ndcg@20": recall / 2,
                             "epochs_run": 1, "mean_epoch_time_s": 2.0, "wall_time_s": 3.0})
    return pd.DataFrame(rows)


def test_summary_is_mean_and_sample_std_over_seeds():
    summary = summarize(synthetic_results(), ["test_recall@20"])
    row = summary.loc[("toy", "B")]
    assert row[("test_recall@20", "mean")] == pytest.approx(np.mean([0.20, 0.21, 0.25]))
    assert row[("test_recall@20", "std")] == pytest.approx(np.std([0.20, 0.21, 0.25], ddof=1))
    assert row[("test_recall@20", "count")] == 3


def test_paired_tests_match_scipy_and_survive_one_seed():
    results = synthetic_results()
    tests = paired_tests(results, "base", "test_recall@20").set_index("label")
    assert tests.loc["A", "mean_diff"] == pytest.approx(0.06)
    # A - base is a constant 0.05, 0.06, 0.07: scipy's paired t-test on those pairs
    expected = stats.ttest_rel([0.30, 0.32, 0.34], [0.25, 0.26, 0.27]).pvalue
    assert tests.loc["A", "ttest_p"] == pytest.approx(expected)
    assert tests.loc["B", "wilcoxon_p"] == pytest.approx(stats.wilcoxon([-0.05, -0.05, -0.02]).pvalue)
    one_seed = paired_tests(results[results["seed"] == 1], "base", "test_recall@20").set_index("label")
    assert one_seed.loc["A", "n"] == 1 and math.isnan(one_seed.loc["A", "ttest_p"])
    assert math.isnan(one_seed.loc["A", "wilcoxon_p"]) and one_seed.loc["A", "mean_diff"] == pytest.approx(0.05)


def test_markdown_bolds_the_best_mean_of_each_metric_column():
    results = synthetic_results()
    results.loc[results["label"] == "B", "test_ndcg@20"] = 0.9  # B best on NDCG, A best on Recall
    table = markdown_table(summarize(results, ["test_recall@20", "test_ndcg@20"]), ["test_recall@20", "test_ndcg@20"])
    rows = {line.split("|")[2].strip(): line.split("|")[3:5] for line in table.splitlines()[2:]}
    assert rows["A"][0].strip() == "**0.3200 ± 0.0200**" and not rows["A"][1].strip().startswith("**")
    assert rows["B"][1].strip() == "**0.9000 ± 0.0000**" and not rows["B"][0].strip().startswith("**")
    assert "**" not in "".join(rows["base"])
    one = markdown_table(summarize(results[results["seed"] == 1], ["test_recall@20"]), ["test_recall@20"])
    assert "**0.3000**" in one  # one seed: the mean alone, no undefined std


def test_sweep_report_writes_table_and_plot(tmp_path):
    spec = check_spec({"models": ["A", "B", "base"], "datasets": ["toy"], "baseline": "base",
                       "sweep": {"key": "num_negatives", "values": [10, 100]}})
    write_report(spec, synthetic_results(sweep=True), str(tmp_path))
    plot = tmp_path / "sweep_num_negatives.png"
    assert plot.stat().st_size > 5000 and plot.read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "results.md").read_text()
    assert "| toy | A | 100 |" in report and "Paired tests against base" in report
    # pairs are seeds at one swept value, never different swept values
    assert "| toy | A | 10 | base | recall@20 | 3 | 0.0600 |" in report


def test_every_label_is_tested_against_each_baseline_without_mirrored_pairs():
    spec = check_spec({"models": ["A", "B", "base"], "datasets": ["toy"], "baseline": ["base", "B"]})
    (_, text, table), _ = bench_report.summary_parts(spec, synthetic_results())
    pairs = [tuple(cell.strip() for cell in line.split("|")[2:5]) for line in table.splitlines()[2:]]
    assert sorted(set(pairs)) == [("A", "B", "ndcg@20"), ("A", "B", "recall@20"), ("A", "base", "ndcg@20"),
                                  ("A", "base", "recall@20"), ("B", "base", "ndcg@20"), ("B", "base", "recall@20")]
    assert len(pairs) == 6 and text.startswith("Paired tests against base, B over seeds")
    assert check_spec({"models": ["A"], "datasets": ["d"], "baseline": "A"})["baseline"] == ["A"]
    with pytest.raises(ConfigError, match="baseline 'C' is not one of the model labels"):
        check_spec({"models": ["A", "B"], "datasets": ["d"], "baseline": ["A", "C"]})
    with pytest.raises(ConfigError, match="baseline must be a model label or a list"):
        check_spec({"models": ["A"], "datasets": ["d"], "baseline": {"A": 1}})


def test_user_tests_pair_the_same_seed_and_match_scipy():
    """Per-user scores of A and base on seeds 1 and 2: each seed's paired t-test is scipy's; a seed
    counts for a side at p < 0.05; a run without scores (seed 3) is left out."""
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(200)]
    base = {seed: rng.random(200) for seed in (1, 2, 3)}
    a = {1: base[1] + 0.05 + 0.01 * rng.standard_normal(200), 2: base[2] + np.tile([0.01, -0.01], 100)}
    scores = {f"base|{s}": base[s] for s in base} | {f"A|{s}": a[s] for s in a}

    def per_user(run_id):
        if run_id not in scores:
            return None
        frame = pd.DataFrame({"user_id": users, "recall@20": scores[run_id]})
        return frame.iloc[::-1] if run_id.startswith("A") else frame  # rows are matched by user, not position

    results = pd.DataFrame([{"run_id": f"{label}|{seed}", "label": label, "dataset": "toy", "seed": seed,
                             "sweep_value": np.nan} for label in ("A", "base") for seed in (1, 2, 3)])
    row = user_tests(results, "base", ["test_recall@20", "test_ndcg@20"], per_user).iloc[0]
    p = [stats.ttest_rel(a[s], base[s]).pvalue for s in (1, 2)]
    assert (row.label, row.metric, row.seeds, row.users) == ("A", "recall@20", 2, 200)
    assert row.max_ttest_p == pytest.approx(max(p)) and p[0] < 0.05 < p[1]
    assert (row.ahead, row.behind) == (1, 0)
    assert row.mean_diff == pytest.approx(np.mean([np.mean(a[s] - base[s]) for s in (1, 2)]))
    table = bench_report.user_tests_table(user_tests(results, "base", ["test_recall@20"], per_user))
    assert table.splitlines()[-1].startswith("| toy | A | base | recall@20 | 2 | 200 | +0.0247 | 1 | 0 | 1 |")
    assert user_tests(results, "A", ["test_recall@20"], lambda run_id: None).empty


def test_tests_table_prints_small_p_values_instead_of_zero():
    tests = pd.DataFrame([{"dataset": "toy", "label": "A", "baseline": "base", "metric": "test_recall@20", "n": 5,
                           "mean_diff": 0.0391, "ttest_p": 4.4e-08, "wilcoxon_p": float("nan"), "sweep_value": np.nan}])
    assert bench_report.tests_table(tests).splitlines()[-1] == "| toy | A | base | recall@20 | 5 | 0.0391 | 4.4e-08 | n/a |"


def test_plan_merges_overrides_in_order_and_sweeps():
    spec = check_spec({
        "models": ["MMLMF", {"label": "CCL", "model": "MMLMF", "overrides": {"loss_type": "CCL"}}],
        "datasets": ["d"], "seeds": [1, 2], "common": {"epochs": 5, "loss_type": "MML"},
        "model_overrides": {"MMLMF": {"epochs": 7}, "CCL": {"neg_weight": 150}},
        "sweep": {"key": "num_negatives", "values": [10, 800]},
    })
    runs = plan_runs(spec)
    assert len(runs) == 8 and [r["seed"] for r in runs[:4]] == [1] * 4  # seeds outermost
    ccl = runs[2]
    assert ccl["run_id"] == "MMLMF|num_negatives=800|d|seed=1" and runs[1]["run_id"] == "CCL|num_negatives=10|d|seed=1"
    ccl = runs[1]
    assert ccl["config"] == {"epochs": 7, "loss_type": "CCL", "neg_weight": 150, "seed": 1, "num_negatives": 10}
    with pytest.raises(ConfigError, match="baseline"):
        check_spec({"models": ["A"], "datasets": ["d"], "baseline": "B"})
    with pytest.raises(ConfigError, match="unknown key"):
        check_spec({"models": ["A"], "datasets": ["d"], "epochs": 3})


def test_benchmark_runs_each_run_once_and_resumes(workdir):
    """Two 1-epoch runs on the tiny dataset in this process; the second invocation finds both done."""
    spec = {
        "output_dir": str(workdir / "bench"), "datasets": ["tiny"], "seeds": [3], "baseline": "BPR",
        "models": [{"label": "MMLMF-10", "model": "MMLMF", "overrides": {"num_negatives": 10}}, "BPR"],
        "common": COMMON, "isolation": "inprocess",
    }
    config = workdir / "bench.yaml"
    config.write_text(yaml.safe_dump(spec))
    assert cli_main(["benchmark", "--config", str(config), "--labels", "BPR"]) == 0
    report = (workdir / "bench" / "results.md").read_text()
    assert "## Not run yet" in report and "| tiny | MMLMF-10 | 3 | not measured | no finished seed |" in report
    assert cli_main(["benchmark", "--config", str(config)]) == 0
    results = pd.read_csv(workdir / "bench" / "results.csv")
    assert results["label"].tolist() == ["BPR", "MMLMF-10"]
    assert "Not run yet" not in (workdir / "bench" / "results.md").read_text()
    assert (results["epochs_run"] == 1).all() and (results["test_recall@20"] > 0).all()
    assert (results["mean_epoch_time_s"] > 0).all() and (results["wall_time_s"] >= results["train_time_s"]).all()
    assert "| tiny | MMLMF-10 |" in (workdir / "bench" / "results.md").read_text()
    assert not (workdir / "bench" / "checkpoints").exists()  # a finished run's resumable state is removed

    ran, skipped, failed, late = run_benchmark(check_spec(spec))
    assert (ran, failed, late, len(skipped)) == ([], [], [], 2)
    assert len(pd.read_csv(workdir / "bench" / "results.csv")) == 2

    # each run kept its per-user test scores, whose means are the row's metrics
    for row in results.itertuples():
        users = read_per_user(str(workdir / "bench"), row.run_id)
        assert len(users) == users["user_id"].nunique() > 10
        assert users["recall@20"].mean() == pytest.approx(getattr(row, "_8"), abs=1e-4)  # test_recall@20
    assert "| tiny | MMLMF-10 | BPR | recall@20 | 1 |" in (workdir / "bench" / "results.md").read_text()

    # --fill-per-user: a row without scores is rerun and gets the same bytes; results.csv is untouched
    bpr = per_user_path(str(workdir / "bench"), "BPR|tiny|seed=3")
    kept, csv_before = open(bpr, "rb").read(), (workdir / "bench" / "results.csv").read_bytes()
    os.remove(bpr)
    assert cli_main(["benchmark", "--config", str(config), "--report-only"]) == 0
    assert "over the test users" not in (workdir / "bench" / "results.md").read_text()  # BPR's scores are gone
    assert cli_main(["benchmark", "--config", str(config), "--fill-per-user"]) == 0
    assert open(bpr, "rb").read() == kept and (workdir / "bench" / "results.csv").read_bytes() == csv_before

    # a rerun that does not reproduce its row writes nothing and fails the command
    os.remove(bpr)
    tampered = results.assign(**{"test_recall@20": results["test_recall@20"] + 0.01})
    tampered.to_csv(workdir / "bench" / "results.csv", index=False)
    assert cli_main(["benchmark", "--config", str(config), "--fill-per-user", "--labels", "BPR"]) == 1
    assert not os.path.exists(bpr) and not os.path.exists(bpr + ".tmp")


def test_a_run_in_a_subprocess_returns_its_row_and_writes_its_log(workdir):
    run = {"model": "MMLMF", "dataset": "tiny", "config": dict(COMMON, num_negatives=10, seed=3)}
    row, error = run_subprocess(run, str(workdir / "logs" / "run.log"), timeout=300)
    assert error is None, error
    assert row["epochs_run"] == 1 and 0 < row["test_recall@20"] <= 1 and row["wall_time_s"] >= row["train_time_s"]
    assert "per_user" not in row  # asked for only
    row, error = run_subprocess(run, str(workdir / "logs" / "run.log"), timeout=300, per_user=True)
    assert error is None and len(row["per_user"]["user_id"]) == len(row["per_user"]["ndcg@20"]) > 10
    assert np.mean(row["per_user"]["ndcg@20"]) == pytest.approx(row["test_ndcg@20"], abs=1e-4)
    log = (workdir / "logs" / "run.log").read_text()
    assert "test result" in log
    assert "GradScaler" not in log  # RecBole's per-epoch deprecation warning stays out of the run's log


def test_bad_benchmark_config_is_one_line_and_exit_2(workdir, capsys):
    tmp_path = workdir
    assert cli_main(["benchmark", "--config", str(tmp_path / "missing.yaml")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [MMLMF]\ndatasets: [ml-100k]\n")
    assert cli_main(["benchmark", "--config", str(bad), "--labels", "BPR"]) == 2
    err = capsys.readouterr().err
    assert not os.path.exists(workdir / "benchmarks")  # nothing written for a refused invocation
    assert "missing.yaml' does not exist" in err and "--labels: ['BPR']" in err and err.count("\n") == 2
    bad.write_text("models: [MMLMF]\ndatasets: [ml-100k]\nresume_every_s: -1\n")
    assert cli_main(["benchmark", "--config", str(bad)]) == 2
    assert "resume_every_s must be a number of seconds >= 0, got -1" in capsys.readouterr().err


def test_labels_and_seeds_select_the_runs_of_this_invocation(workdir, capsys):
    spec = {"output_dir": str(workdir / "sel"), "datasets": ["tiny"], "seeds": [3, 4, 5], "models": ["BPR", "MMLMF"]}
    config = workdir / "sel.yaml"
    config.write_text(yaml.safe_dump(spec))
    assert cli_main(["benchmark", "--config", str(config), "--dry-run", "--seeds", "5,3", "--labels", "MMLMF"]) == 0
    assert capsys.readouterr().out.split() == ["MMLMF|tiny|seed=3", "MMLMF|tiny|seed=5"]
    pd.DataFrame([{"run_id": "MMLMF|tiny|seed=4", "label": "MMLMF", "model": "MMLMF", "dataset": "tiny", "seed": 4,
                   "sweep_key": "", "sweep_value": np.nan, "test_recall@20": 0.1, "wall_time_s": 600.0}]
                 ).to_csv(workdir / "sel.csv", index=False)
    os.makedirs(workdir / "sel")
    os.replace(workdir / "sel.csv", workdir / "sel" / "results.csv")
    assert cli_main(["benchmark", "--config", str(config), "--dry-run", "--seeds", "3,4"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["BPR|tiny|seed=3", "MMLMF|tiny|seed=3  ~10 min", "BPR|tiny|seed=4"]
    assert "3 run(s) to do; the 1 with an estimate take about 0.2 hours" in err
    os.remove(workdir / "sel" / "results.csv")
    os.rmdir(workdir / "sel")
    assert cli_main(["benchmark", "--config", str(config), "--seeds", "6"]) == 2
    assert cli_main(["benchmark", "--config", str(config), "--seeds", "x"]) == 2
    err = capsys.readouterr().err
    assert "--seeds: [6] not among the yaml's seeds [3, 4, 5]" in err and "--seeds: expected comma-separated" in err
    assert err.count("\n") == 2 and not os.path.exists(workdir / "sel")


def test_hours_starts_only_the_runs_whose_estimate_ends_in_time(workdir, capsys):
    """``--hours``: a run starts while its estimate (its setting's finished seeds) still fits; one estimated
    past the limit, or with no finished seed to estimate from, is left for the next invocation."""
    spec = {"output_dir": str(workdir / "h"), "datasets": ["tiny"], "seeds": [3, 4], "common": COMMON,
            "isolation": "inprocess", "models": ["BPR", {"label": "SLOW", "model": "MMLMF"},
                                                   {"label": "NEW", "model": "MMLMF"}]}
    config = workdir / "h.yaml"
    config.write_text(yaml.safe_dump(spec))
    os.makedirs(workdir / "h")
    pd.DataFrame([{"run_id": f"{label}|tiny|seed=3", "label": label, "model": model, "dataset": "tiny", "seed": 3,
                   "sweep_key": "", "sweep_value": np.nan, "test_recall@20": 0.1, "test_ndcg@20": 0.1,
                   "wall_time_s": wall} for label, model, wall in [("BPR", "BPR", 60.0), ("SLOW", "MMLMF", 7200.0)]]
                 ).to_csv(workdir / "h" / "results.csv", index=False)
    assert cli_main(["benchmark", "--config", str(config), "--hours", "1"]) == 0
    out = capsys.readouterr().out
    assert pd.read_csv(workdir / "h" / "results.csv").run_id.tolist()[-1] == "BPR|tiny|seed=4"
    assert "1 run(s) done, 2 already in" in out
    assert "3 not started: no estimate, or their estimate ends past --hours 1 (--dry-run lists them): " \
           "NEW|tiny|seed=3, SLOW|tiny|seed=4, NEW|tiny|seed=4" in out
    assert cli_main(["benchmark", "--config", str(config), "--hours", "0"]) == 2
    assert capsys.readouterr().err == "error: --hours: expected a number of hours > 0, got 0.0\n"


def test_a_ray_task_past_its_latest_start_returns_without_running():
    from recbole_mml.benchmark.distributed import run_task

    missing = {"run_id": "X", "model": "NoSuchModel", "dataset": "none", "config": {}}
    assert run_task(missing, 1, None, start_by=time.time() - 1) is None
    with pytest.raises(Exception):  # the same task in time runs it
        run_task(missing, 1, None, start_by=time.time() + 3600)


def test_pending_runs_are_estimated_from_the_finished_seeds_of_their_setting_and_reported():
    spec = check_spec({"datasets": ["d"], "seeds": [1, 2, 3], "models": ["A", "B"],
                       "sweep": {"key": "num_negatives", "values": [10, 100]}})
    rows = [{"run_id": f"A|num_negatives={n}|d|seed={seed}", "label": "A", "model": "A", "dataset": "d", "seed": seed,
             "sweep_key": "num_negatives", "sweep_value": n, "wall_time_s": wall}
            for n, seed, wall in [(10, 1, 60.0), (10, 2, 180.0), (100, 1, 600.0)]]
    pending = pending_runs(plan_runs(spec), pd.DataFrame(rows))
    assert len(pending) == 12 - 3
    by_id = pending.set_index("run_id")
    assert by_id.loc["A|num_negatives=10|d|seed=3", "est_min"] == 2.0  # mean of seeds 1 and 2, not of N = 100
    assert by_id.loc["A|num_negatives=100|d|seed=2", "est_min"] == 10.0
    assert by_id.loc["A|num_negatives=100|d|seed=2", "est_runs"] == 1
    assert pending[pending.label == "B"].est_min.isna().all() and (pending[pending.label == "B"].est_runs == 0).all()
    table = bench_report.pending_table(pending).splitlines()
    assert "| d | A, num_negatives=10 | 3 | 2 | 2 finished seed(s) |" in table
    assert "| d | B, num_negatives=100 | 1, 2, 3 | not measured | no finished seed |" in table
    assert table[-1] == "9 runs; those with an estimate (3) need about 0.4 more hours of one thread."
    assert bench_report.pending_table(pending.iloc[:0]) == ""


def test_a_stopped_run_with_a_saved_state_is_listed_as_under_way_with_what_is_left(workdir):
    spec = check_spec({"datasets": ["d"], "seeds": [1, 2, 3], "models": ["A"]})
    rows = pd.DataFrame([{"run_id": f"A|d|seed={seed}", "label": "A", "model": "A", "dataset": "d", "seed": seed,
                          "wall_time_s": 600.0} for seed in (1,)])
    for seed, progress in ((2, '{"epoch": 7, "wall_s": 240.0}'), (3, None)):
        folder = state_dir(str(workdir), f"A|d|seed={seed}")
        os.makedirs(folder)
        open(os.path.join(folder, run_state.STATE_FILE), "wb").close()
        if progress:
            with open(os.path.join(folder, run_state.PROGRESS_FILE), "w") as f:
                f.write(progress)
    pending = pending_runs(plan_runs(spec), rows, str(workdir)).set_index("run_id")
    assert pending.loc["A|d|seed=2", "under_way"] and pending.loc["A|d|seed=2", "saved_epoch"] == 7
    assert pending.loc["A|d|seed=2", "est_min"] == 10.0 and pending.loc["A|d|seed=2", "left_min"] == 6.0
    # a state saved without its progress file: under way, where unknown, the whole estimate left
    assert pending.loc["A|d|seed=3", "under_way"] and pd.isna(pending.loc["A|d|seed=3", "saved_epoch"])
    assert pending.loc["A|d|seed=3", "left_min"] == 10.0
    assert not pending_runs(plan_runs(spec), rows).under_way.any()  # without the folder, nothing is looked up
    table = bench_report.pending_table(pending.reset_index()).splitlines()
    assert "| d | A | 2 (under way: resumes at epoch 7, about 6 min left), 3 (under way, about 10 min left) | 10 | " \
           "1 finished seed(s) |" in table
    unmeasured = pending_runs(plan_runs(check_spec({"datasets": ["d"], "seeds": [2], "models": ["A"]})),
                              rows.iloc[:0], str(workdir))
    assert bench_report.seed_text(next(unmeasured.itertuples())) == "2 (under way: resumes at epoch 7, 4 min spent)"
    assert table[-1] == "2 runs; those with an estimate (2) need about 0.3 more hours of one thread."


@pytest.mark.slow
def test_runs_as_ray_tasks_give_the_rows_of_runs_in_this_process_and_a_failure_goes_on(workdir):
    """``--jobs 2``: the runs go to a private local Ray as tasks; each row equals the same run in this
    process (same seed, same numbers), and a run that fails is reported while the others finish."""
    models = [{"label": "MMLMF-10", "model": "MMLMF", "overrides": {"num_negatives": 10}}, "BPR",
              {"label": "BAD", "model": "MMLMF", "overrides": {"neg_replacement": False, "num_negatives": 10**6}}]
    spec = {"output_dir": str(workdir / "ray"), "datasets": ["tiny"], "seeds": [3], "baseline": "BPR",
            "models": models, "common": COMMON, "isolation": "inprocess"}
    config = workdir / "bench.yaml"
    config.write_text(yaml.safe_dump(spec))
    assert cli_main(["benchmark", "--config", str(config), "--jobs", "2"]) == 1  # BAD failed
    on_ray = pd.read_csv(workdir / "ray" / "results.csv").set_index("label")
    assert sorted(on_ray.index) == ["BPR", "MMLMF-10"]
    ran, _, failed, _ = run_benchmark(check_spec(dict(spec, output_dir=str(workdir / "here"), models=models[:2])))
    here = pd.read_csv(workdir / "here" / "results.csv").set_index("label")
    for label in ("BPR", "MMLMF-10"):
        assert on_ray.loc[label, "test_ndcg@20"] == here.loc[label, "test_ndcg@20"]
    # a rerun finds both rows and retries only the failed run
    assert cli_main(["benchmark", "--config", str(config), "--dry-run"]) == 0



SHIPPED = sorted(glob.glob(os.path.join(ROOT, "properties", "benchmark", "*.yaml")))


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_every_shipped_benchmark_gives_runs_whose_configs_pass_the_checks(path):
    """A wrong key or value in a shipped plan fails here, not hours into a benchmark; one run per label
    and dataset (seeds change nothing else)."""
    runs = plan_runs(load_spec(path))
    first = {(run["label"], run["dataset"], run["sweep_value"]): run for run in reversed(runs)}
    for run in first.values():
        config = build_config(run["model"], run["dataset"], config_dict=run["config"])
        for key, value in run["config"].items():
            assert config[key] == value, f"{os.path.basename(path)}: {run['run_id']}: {key}"
