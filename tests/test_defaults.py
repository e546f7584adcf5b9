"""The package defaults and the main job come from the committed ml-100k search (make search-ml100k);
the author's Gowalla and Yelp2018 settings stay available as named files."""

import csv
import os

import pytest
import yaml

from recbole_mml.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEARCH = os.path.join(ROOT, "benchmarks", "results", "ml100k_search")
SPACES = os.path.join(ROOT, "properties", "search", "ml-100k")
MAIN_JOB = os.path.join(ROOT, "properties", "benchmark", "ml100k_main.yaml")
OUR_MODELS = ["MMLMF", "MMLSimpleX", "MMLLightGCN"]
# label in the main job -> (search folder, model, keys the search fixed)
MAIN_ROWS = {
    "MMLMF": ("MMLMF", "MMLMF", {}),
    "CCL": ("CCL", "MMLMF", {"loss_type": "CCL"}),
    "BPR": ("BPR", "BPR", {}),
    "LightGCN": ("LightGCN", "LightGCN", {}),
    "SimpleX": ("SimpleX", "SimpleX", {}),
}


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def searched(label):
    """The best trial's values of the keys its search space names (margins,weights: both keys)."""
    best = load(os.path.join(SEARCH, label, "best.yaml"))
    keys = [k.strip() for name in load(os.path.join(SPACES, f"{label}.yaml")) for k in name.split(",")]
    return {key: best[key] for key in keys}


def assert_same(actual, expected, what):
    """Equal; a float may be rounded to 3 significant digits (learning rates in the yaml files)."""
    if isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=5e-3), what
    else:
        assert actual == expected, what


@pytest.mark.parametrize("model", OUR_MODELS)
def test_package_defaults_are_the_best_of_the_committed_search(model):
    config = Config(model, "ml-100k")
    values = searched(model)
    assert {"learning_rate", "margins", "weights", "neg_weight", "num_negatives"} <= set(values)
    for key, value in values.items():
        assert_same(config[key], value, f"{model}: default {key} = {config[key]}, search best {value}")
    assert config["loss_type"] == "MML"


@pytest.mark.parametrize("label", [row[0] for row in MAIN_ROWS.values()] + ["MMLSimpleX", "MMLLightGCN"])
def test_each_search_ranked_on_validation_under_the_shared_budget(label):
    budget = load(os.path.join(SPACES, "budget.yaml"))
    best = load(os.path.join(SEARCH, label, "best.yaml"))
    for key, value in budget.items():
        assert best[key] == value, f"{label}: {key}"
    with open(os.path.join(SEARCH, label, "trials.csv"), encoding="utf-8") as f:
        trials = list(csv.DictReader(f))
    assert len(trials) == 10 and all(t["status"] in ("TERMINATED", "STOPPED") for t in trials)
    column = f"valid_{budget['valid_metric'].lower()}"
    scores = [float(t[column]) for t in trials]
    assert scores == sorted(scores, reverse=True)  # best first: best.yaml holds the first row's values
    for key, value in searched(label).items():
        assert_same(yaml.safe_load(trials[0][key]), value, f"{label}: {key}")


def test_main_job_trains_every_model_under_the_budget_at_its_searched_setting():
    spec = load(MAIN_JOB)
    assert spec["common"] == load(os.path.join(SPACES, "budget.yaml"))
    assert spec["datasets"] == ["ml-100k"]
    entries = {e["label"]: e for e in spec["models"]}
    assert list(entries) == list(MAIN_ROWS)
    assert entries["MMLMF"] == {"label": "MMLMF", "model": "MMLMF"}  # the package defaults, nothing else
    for label, (search, model, fixed) in MAIN_ROWS.items():
        if label == "MMLMF":
            continue
        entry = entries[label]
        assert entry["model"] == model
        expected = dict(fixed, **searched(search))
        assert set(entry["overrides"]) == set(expected), label
        for key, value in expected.items():
            assert_same(entry["overrides"][key], value, f"{label}: {key}")


@pytest.mark.parametrize("dataset, margins, weights, neg_weight", [
    ("gowalla", [0.7, 0.8, 0.9], [0.10, 0.15, 0.75], 700.0),
    ("yelp2018", [0.6, 0.7, 0.8, 0.9], [0.05, 0.15, 0.20, 0.60], 400.0),
])
def test_the_authors_settings_stay_available_as_named_files(dataset, margins, weights, neg_weight):
    author = os.path.join(ROOT, "properties", "author", f"{dataset}.yaml")
    config = Config("MMLMF", dataset, config_file_list=[author])
    assert (config["margins"], config["weights"], config["neg_weight"]) == (margins, weights, neg_weight)
    # the fast configs and the real-data benchmarks name their MML setting, so the defaults do not reach them
    fast = load(os.path.join(ROOT, "properties", "fast", f"{dataset}.yaml"))
    assert (fast["margins"], fast["weights"], fast["neg_weight"]) == (margins, weights, neg_weight)
    bench = load(os.path.join(ROOT, "properties", "benchmark", f"{dataset}.yaml"))
    for entry in bench["models"]:
        if not isinstance(entry, dict) or entry["model"] not in OUR_MODELS:
            continue
        run = dict(bench["common"])  # as the benchmark merges them: common < model_overrides < the entry's own
        run.update((bench.get("model_overrides") or {}).get(entry["model"], {}))
        run.update(entry.get("overrides", {}))
        if run.get("loss_type", "MML") == "MML":
            assert (run["margins"], run["weights"], run["neg_weight"]) == (margins, weights, neg_weight), entry


def _main_job_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ml100k_main", os.path.join(ROOT, "benchmarks", "ml100k_main.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_main_job_table_puts_the_best_first_and_says_when_mmlmf_is_not():
    import pandas as pd

    main_job = _main_job_module()
    spec = {"models": ["BPR", {"label": "MMLMF", "model": "MMLMF"},
                       {"label": "CCL", "model": "MMLMF", "overrides": {"loss_type": "CCL", "learning_rate": 0.009561}}]}
    results = pd.DataFrame({
        "label": ["MMLMF", "BPR", "CCL"], "test_recall@10": [0.25, 0.26, 0.2], "test_ndcg@10": [0.30, 0.33, 0.2],
        "epochs_run": [20, 18, 10], "train_time_s": [48.1, 4.7, 29.2], "wall_time_s": [56.2, 13.8, 37.4],
    })
    rows = main_job.table(results, spec).splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == ["| BPR", "| MMLMF", "| CCL"]
    assert "package defaults" in rows[1] and "loss_type CCL, learning_rate 0.00956" in rows[2]
    assert main_job.verdict(results) == "MMLMF is not first: BPR reaches test NDCG@10 0.3300, 10.0% above MMLMF (0.3000)."
    results.loc[results["label"] == "MMLMF", "test_ndcg@10"] = 0.363
    assert main_job.verdict(results).startswith("MMLMF leads: test NDCG@10 0.3630, 10.0% above the next, BPR (0.3300)")
