"""Models x datasets x seeds (x a swept key) -> results.csv, results.md, significance tests, plots.

    python run_recbole_mml.py benchmark --config properties/benchmark/gowalla.yaml
    python run_recbole_mml.py benchmark --config my.yaml --dry-run      (list the runs)
    python run_recbole_mml.py benchmark --config my.yaml --report-only  (rebuild results.md)

The yaml names the runs::

    output_dir: benchmarks/gowalla          # results.csv, results.md, logs/<run>.log
    datasets: [gowalla]
    seeds: [2020, 2021, 2022]
    baseline: BPR                           # paired tests of every other label against it
    common: {epochs: 20, torch_num_threads: 1}   # overrides for every run
    dataset_overrides: {gowalla: {...}}     # per data set
    models:                                 # a model name, or a labelled variant
      - MMLMF
      - {label: MMLMF-CCL, model: MMLMF, overrides: {loss_type: CCL, neg_weight: 150}}
      - BPR
    model_overrides: {BPR: {...}}           # per label (or model name)
    sweep: {key: num_negatives, values: [10, 100, 800]}   # optional: also vary one key

Every run is one subprocess (``isolation: inprocess`` to run in this process), so memory of one
run (EASE's dense item matrix) is freed before the next. A run appends one row to results.csv
as soon as it ends and results.md is rebuilt, so an interrupted benchmark keeps what it finished;
run the same command again and every run already in results.csv is skipped.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from recbole_mml.errors import ConfigError

BENCHMARK_KEYS = {
    "output_dir", "datasets", "seeds", "baseline", "common", "dataset_overrides", "models",
    "model_overrides", "sweep", "isolation", "timeout", "metrics", "plot",
}
MODEL_KEYS = {"label", "model", "overrides"}
KEY_COLUMNS = ["run_id", "label", "model", "dataset", "seed", "sweep_key", "sweep_value"]
INFO_COLUMNS = ["best_valid_score", "epochs_run", "train_time_s", "mean_epoch_time_s", "wall_time_s"]


# ---------------------------------------------------------------------------------------------
# The plan: which runs a yaml asks for


def load_spec(path):
    """The benchmark yaml as a checked dict; ConfigError names the file and the bad key."""
    if not os.path.isfile(path):
        raise ConfigError(f"benchmark config '{path}' does not exist")
    with open(path, encoding="utf-8") as f:
        try:
            spec = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"benchmark config '{path}' is not valid yaml: {str(e).splitlines()[0]}") from None
    return check_spec(spec, path)


def check_spec(spec, where="benchmark config"):
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping of key: value")
    unknown = set(spec) - BENCHMARK_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(BENCHMARK_KEYS)}")
    for key in ("models", "datasets"):
        if not spec.get(key) or not isinstance(spec[key], list):
            raise ConfigError(f"{where}: '{key}' must be a non-empty list")
    spec = dict(spec)
    spec.setdefault("seeds", [2020])
    spec.setdefault("output_dir", "benchmarks")
    spec.setdefault("isolation", "subprocess")
    if spec["isolation"] not in ("subprocess", "inprocess"):
        raise ConfigError(f"{where}: isolation must be subprocess or inprocess, got {spec['isolation']!r}")
    models = []
    for entry in spec["models"]:
        if isinstance(entry, str):
            entry = {"model": entry}
        if not isinstance(entry, dict) or "model" not in entry or set(entry) - MODEL_KEYS:
            raise ConfigError(f"{where}: a models entry is a name or {{label, model, overrides}}, got {entry!r}")
        models.append({"label": str(entry.get("label", entry["model"])), "model": entry["model"],
                       "overrides": dict(entry.get("overrides") or {})})
    labels = [m["label"] for m in models]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: model labels must be unique, got {labels}")
    spec["models"] = models
    baseline = spec.get("baseline")
    if baseline is not None and baseline not in labels:
        raise ConfigError(f"{where}: baseline {baseline!r} is not one of the model labels {labels}")
    sweep = spec.get("sweep")
    if sweep is not None:
        if not isinstance(sweep, dict) or set(sweep) != {"key", "values"} or not sweep["values"]:
            raise ConfigError(f"{where}: sweep must be {{key: NAME, values: [..]}}, got {sweep!r}")
    return spec


def plan_runs(spec):
    """Every run as a dict (run_id, label, model, dataset, seed, sweep, config overrides), in order.

    Seeds are the outer loop, so a budget that runs out still has every model on the first seed;
    within a seed the yaml's order of data sets, swept values and models decides what runs first.
    """
    sweep = spec.get("sweep")
    sweep_values = sweep["values"] if sweep else [None]
    runs = []
    for seed in spec["seeds"]:
        for dataset in spec["datasets"]:
            for value in sweep_values:
                for entry in spec["models"]:
                    config = {}
                    config.update(spec.get("common") or {})
                    config.update((spec.get("dataset_overrides") or {}).get(dataset) or {})
                    model_overrides = spec.get("model_overrides") or {}
                    config.update(model_overrides.get(entry["model"]) or {})
                    if entry["label"] != entry["model"]:
                        config.update(model_overrides.get(entry["label"]) or {})
                    config.update(entry["overrides"])
                    config["seed"] = int(seed)
                    parts = [entry["label"], dataset, f"seed={seed}"]
                    if sweep:
                        config[sweep["key"]] = value
                        parts.insert(1, f"{sweep['key']}={value}")
                    runs.append({
                        "run_id": "|".join(parts), "label": entry["label"], "model": entry["model"],
                        "dataset": dataset, "seed": int(seed),
                        "sweep_key": sweep["key"] if sweep else "", "sweep_value": value,
                        "config": config,
                    })
    return runs


def finished_run_ids(csv_path):
    if not os.path.isfile(csv_path):
        return set()
    return set(pd.read_csv(csv_path, usecols=["run_id"])["run_id"])


# ---------------------------------------------------------------------------------------------
# One run


@contextmanager
def epoch_timer():
    """Record the duration of every training epoch of any RecBole trainer while active.

    RecBole's ``fit`` returns only the best scores; the epoch count and time per epoch are what a
    budgeted benchmark needs to report, and every trainer (ours call ``super()``) goes through
    ``Trainer._train_epoch``.
    """
    from recbole.trainer import Trainer

    original = Trainer._train_epoch
    durations = []

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            durations.append(time.perf_counter() - start)

    Trainer._train_epoch = timed
    try:
        yield durations
    finally:
        Trainer._train_epoch = original


def execute(model, dataset, config_dict):
    """Train and test one model in this process through recbole_mml.quick_start; a flat result dict."""
    import recbole_mml  # noqa: F401  (compatibility fixes before RecBole's modules run)
    from recbole.utils import init_logger, init_seed

    from recbole_mml.quick_start import build_config, prepare_data, train_and_test

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recbole_mml_ckpt_") as checkpoints:
        config = build_config(model, dataset, config_dict=dict(config_dict, checkpoint_dir=checkpoints))
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        data = prepare_data(config)
        with epoch_timer() as durations:
            result = train_and_test(config, *data, saved=True, verbose=True)
    row = {f"test_{k}": float(v) for k, v in result["test_result"].items()}
    score = result["best_valid_score"]
    row.update(
        best_valid_score=float(score) if score is not None else math.nan,
        epochs_run=len(durations),
        train_time_s=float(sum(durations)),
        mean_epoch_time_s=float(np.mean(durations)) if durations else math.nan,
        wall_time_s=time.perf_counter() - start,
    )
    return row


def run_subprocess(run, log_path, timeout=None):
    """One run in a fresh interpreter (memory freed after it); its console log goes to ``log_path``."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="recbole_mml_run_") as tmp:
        request = os.path.join(tmp, "run.json")
        answer = os.path.join(tmp, "result.json")
        with open(request, "w", encoding="utf-8") as f:
            json.dump({"model": run["model"], "dataset": run["dataset"], "config": run["config"]}, f)
        start = time.perf_counter()
        with open(log_path, "w", encoding="utf-8") as log:
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "recbole_mml.benchmark", "--worker", request, answer],
                    stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                )
            except subprocess.TimeoutExpired:
                return None, f"timed out after {timeout} s"
        if proc.returncode != 0 or not os.path.isfile(answer):
            return None, f"exit code {proc.returncode}, see {log_path}"
        with open(answer, encoding="utf-8") as f:
            row = json.load(f)
        row["wall_time_s"] = time.perf_counter() - start
        return row, None


def worker_main(request, answer):
    with open(request, encoding="utf-8") as f:
        job = json.load(f)
    row = execute(job["model"], job["dataset"], job["config"])
    with open(answer, "w", encoding="utf-8") as f:
        json.dump(row, f)
    return 0


def append_row(csv_path, row):
    """Append one finished run; a new metric column rewrites the file with the union of columns."""
    frame = pd.DataFrame([row])
    if os.path.isfile(csv_path):
        old = pd.read_csv(csv_path)
        if set(frame.columns) - set(old.columns):
            pd.concat([old, frame], ignore_index=True).to_csv(csv_path, index=False)
            return
        frame = frame.reindex(columns=old.columns)
        frame.to_csv(csv_path, mode="a", header=False, index=False)
    else:
        frame.to_csv(csv_path, index=False)


# ---------------------------------------------------------------------------------------------
# Statistics and reports


def metric_columns(results):
    return [c for c in results.columns if c.startswith("test_")]


def group_columns(results):
    """Rows that differ only by seed form one group: (dataset, label) plus the swept value if any."""
    cols = ["dataset", "label"]
    if "sweep_value" in results and results["sweep_value"].notna().any():
        cols.append("sweep_value")
    return cols


def summarize(results, columns=None):
    """Mean, sample std (ddof=1; NaN for one seed) and n per group and column."""
    columns = columns or metric_columns(results) + [c for c in INFO_COLUMNS if c in results]
    grouped = results.groupby(group_columns(results), sort=False)[columns]
    summary = grouped.agg(["mean", "std", "count"])
    return summary


def paired_tests(results, baseline, metric):
    """Each label against ``baseline`` on ``metric``, paired by seed within (dataset[, swept value]).

    Returns one row per (dataset, label[, swept value]): n pairs, mean difference, and the p-values of
    scipy.stats.ttest_rel and wilcoxon (NaN where a test is undefined: fewer than two pairs, or
    all differences zero).
    """
    from scipy import stats

    swept = "sweep_value" in group_columns(results)
    keys = ["dataset", "seed"] + (["sweep_value"] if swept else [])
    base = results[results["label"] == baseline][keys + [metric]].rename(columns={metric: "base"})
    rows = []
    groups = ["dataset", "label"] + (["sweep_value"] if swept else [])
    for key, group in results[results["label"] != baseline].groupby(groups, sort=False):
        dataset, label = key[0], key[1]
        value = key[2] if swept else math.nan
        paired = group[keys + [metric]].merge(base, on=keys)
        diff = (paired[metric] - paired["base"]).to_numpy(dtype=float)
        t_p = w_p = math.nan
        if len(diff) >= 2 and np.any(diff != 0):
            if np.std(diff) > 0:
                t_p = float(stats.ttest_rel(paired[metric], paired["base"]).pvalue)
            w_p = float(stats.wilcoxon(diff).pvalue)
        rows.append({"dataset": dataset, "label": label, "sweep_value": value, "baseline": baseline, "metric": metric, "n": len(diff),
                     "mean_diff": float(diff.mean()) if len(diff) else math.nan, "ttest_p": t_p, "wilcoxon_p": w_p})
    return pd.DataFrame(rows, columns=["dataset", "label", "sweep_value", "baseline", "metric", "n", "mean_diff", "ttest_p",
                                       "wilcoxon_p"])


def _fmt(value, digits=4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def format_cell(mean, std, digits=4):
    """``mean ± std``, or the mean alone when std is undefined (one seed)."""
    if isinstance(std, float) and math.isnan(std):
        return _fmt(mean, digits)
    return f"{_fmt(mean, digits)} ± {_fmt(std, digits)}"


def markdown_table(summary, metrics, info=(), digits=4):
    """A markdown table of mean ± std per group; the best mean of each metric column in bold.

    Ties all get bold; the bold marks the highest mean within each data set (metrics are
    higher-is-better, as Recall and NDCG are).
    """
    index_names = list(summary.index.names)
    header = [n if n != "sweep_value" else "N" for n in index_names] + [m.replace("test_", "") for m in metrics]
    header += [{"mean_epoch_time_s": "s/epoch", "epochs_run": "epochs", "wall_time_s": "wall s",
                "train_time_s": "train s", "best_valid_score": "best valid"}.get(c, c) for c in info]
    best = {}
    datasets = summary.index.get_level_values("dataset")
    for m in metrics:
        best[m] = summary[(m, "mean")].groupby(datasets).transform("max")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(index_names) + "---:|" * (len(header) - len(index_names))]
    for i, (key, row) in enumerate(summary.iterrows()):
        key = key if isinstance(key, tuple) else (key,)
        cells = [f"{k:g}" if isinstance(k, float) else str(k) for k in key]
        for m in metrics:
            cell = format_cell(row[(m, "mean")], row[(m, "std")], digits)
            if not math.isnan(row[(m, "mean")]) and row[(m, "mean")] == best[m].iloc[i]:
                cell = f"**{cell}**"
            cells.append(cell)
        for c in info:
            digits_c = 0 if c == "epochs_run" else 1
            cells.append(format_cell(row[(c, "mean")], row[(c, "std")], digits_c))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tests_table(tests):
    swept = tests["sweep_value"].notna().any()
    lines = ["| dataset | model |" + (" N |" if swept else "") + " vs | metric | n | mean diff | t-test p | Wilcoxon p |",
             "|---|---|" + ("---:|" if swept else "") + "---|---|---:|---:|---:|---:|"]
    for _, r in tests.iterrows():
        value = f" {r['sweep_value']:g} |" if swept else ""
        lines.append(
            f"| {r['dataset']} | {r['label']} |{value} {r['baseline']} | {r['metric'].replace('test_', '')} | {r['n']} | "
            f"{_fmt(r['mean_diff'])} | {_fmt(r['ttest_p'], 3)} | {_fmt(r['wilcoxon_p'], 3)} |"
        )
    return "\n".join(lines)


def sweep_plot(results, path, metrics, sweep_key="num_negatives"):
    """Each metric against the swept value (log x), one line per label with ± std bars, per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(results["dataset"]))
    fig, axes = plt.subplots(len(datasets), len(metrics), figsize=(4.2 * len(metrics), 3.4 * len(datasets)),
                             squeeze=False)
    for r, dataset in enumerate(datasets):
        data = results[results["dataset"] == dataset]
        for c, metric in enumerate(metrics):
            ax = axes[r][c]
            for label, group in data.groupby("label", sort=False):
                stats = group.groupby("sweep_value")[metric].agg(["mean", "std"]).sort_index()
                ax.errorbar(stats.index.astype(float), stats["mean"], yerr=stats["std"].fillna(0.0),
                            marker="o", capsize=3, label=label)
            ax.set_xscale("log")
            ax.set_xlabel(sweep_key)
            ax.set_ylabel(metric.replace("test_", ""))
            ax.set_title(dataset)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(spec, results, out_dir):
    """results.md (and sweep_<key>.png for a sweep) from the rows of results.csv."""
    metrics = spec.get("metrics")
    metrics = [f"test_{m}" for m in metrics] if metrics else metric_columns(results)
    info = [c for c in ("epochs_run", "mean_epoch_time_s", "wall_time_s") if c in results]
    summary = summarize(results, metrics + info)
    seeds = sorted(results["seed"].unique())
    parts = [
        "# Benchmark results",
        "",
        f"{len(results)} runs; seeds {', '.join(map(str, seeds))}; mean ± std over seeds (std needs two seeds); "
        "best mean per metric and data set in bold. Times are seconds on the machine that ran them.",
        "",
        markdown_table(summary, metrics, info),
    ]
    baseline = spec.get("baseline")
    if baseline and (results["label"] == baseline).any():
        tests = pd.concat([paired_tests(results, baseline, m) for m in metrics], ignore_index=True)
        parts += ["", f"## Paired tests against {baseline} (over seeds)", "",
                  "p-values of scipy.stats.ttest_rel and wilcoxon on the per-seed differences; "
                  "n/a where a test is undefined (fewer than two seeds, or no difference).", "", tests_table(tests)]
    sweep = spec.get("sweep")
    if sweep and results["sweep_value"].notna().any():
        path = spec.get("plot") or os.path.join(out_dir, f"sweep_{sweep['key']}.png")
        sweep_plot(results, path, metrics, sweep["key"])
        parts += ["", f"Plot: `{path}`"]
    with open(os.path.join(out_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(parts) + "\n")


# ---------------------------------------------------------------------------------------------
# Command line


def _parser():
    parser = argparse.ArgumentParser(prog="run_recbole_mml.py benchmark",
                                     description="Run models x datasets x seeds from a yaml; resumable.")
    parser.add_argument("--config", required=True, help="benchmark yaml (see properties/benchmark/)")
    parser.add_argument("--output_dir", default=None, help="overrides the yaml's output_dir")
    parser.add_argument("--labels", default=None,
                        help="comma-separated model labels to run now (default: all); the report covers every run")
    parser.add_argument("--dry-run", action="store_true", help="list the runs still to do, run nothing")
    parser.add_argument("--report-only", action="store_true", help="rebuild results.md from results.csv")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return parser


def run_benchmark(spec, out_dir=None, dry_run=False, report_only=False, labels=None):
    """Run every planned run not yet in results.csv; returns (ran, skipped, failed) run ids.

    ``labels`` restricts this invocation to some models, so cheap runs of several benchmarks can
    go before the expensive ones; the results of all invocations share one results.csv.
    """
    out_dir = out_dir or spec["output_dir"]
    runs = plan_runs(spec)
    if labels:
        known = [m["label"] for m in spec["models"]]
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise ConfigError(f"--labels: {unknown} not among the model labels {known}")
        runs = [r for r in runs if r["label"] in labels]
    os.makedirs(out_dir, exist_ok=True)
    csv_path = os.path.join(out_dir, "results.csv")
    done = finished_run_ids(csv_path)
    pending = [r for r in runs if r["run_id"] not in done]
    skipped = [r["run_id"] for r in runs if r["run_id"] in done]
    if dry_run or report_only:
        for r in pending if dry_run else []:
            print(r["run_id"])
        if report_only and os.path.isfile(csv_path):
            write_report(spec, pd.read_csv(csv_path), out_dir)
        return [], skipped, []
    from logging import getLogger

    ran, failed = [], []
    progress = tqdm(pending, desc="benchmark", unit="run")
    for run in progress:
        progress.set_postfix_str(run["run_id"])
        log_path = os.path.join(out_dir, "logs", run["run_id"].replace("|", "__").replace("=", "-") + ".log")
        if spec["isolation"] == "subprocess":
            row, error = run_subprocess(run, log_path, spec.get("timeout"))
        else:
            row, error = execute(run["model"], run["dataset"], run["config"]), None
        if error:
            failed.append(run["run_id"])
            getLogger().error(f"benchmark run {run['run_id']} failed: {error}")
            tqdm.write(f"failed: {run['run_id']}: {error}")
            continue
        record = {k: run[k] for k in KEY_COLUMNS}
        record.update(row)
        append_row(csv_path, record)
        ran.append(run["run_id"])
        write_report(spec, pd.read_csv(csv_path), out_dir)
    return ran, skipped, failed


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return worker_main(argv[1], argv[2])
    args = _parser().parse_args(argv)
    spec = load_spec(args.config)
    labels = [label.strip() for label in args.labels.split(",") if label.strip()] if args.labels else None
    ran, skipped, failed = run_benchmark(spec, args.output_dir, args.dry_run, args.report_only, labels)
    out_dir = args.output_dir or spec["output_dir"]
    if not args.dry_run:
        print(f"{len(ran)} run(s) done, {len(skipped)} already in {os.path.join(out_dir, 'results.csv')}, "
              f"{len(failed)} failed; report: {os.path.join(out_dir, 'results.md')}")
    return 1 if failed else 0


if __name__ == "__main__":
    import recbole_mml  # noqa: F401

    sys.exit(main())
