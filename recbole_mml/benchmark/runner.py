"""The benchmark command: run every planned run not yet in results.csv, then rebuild the report.

    python run_recbole_mml.py benchmark --config properties/benchmark/ml100k_smoke.yaml
    python run_recbole_mml.py benchmark --config my.yaml --dry-run      (list the runs)
    python run_recbole_mml.py benchmark --config my.yaml --report-only  (rebuild results.md)
"""

import argparse
import os
import sys
from logging import getLogger

import pandas as pd
from tqdm import tqdm

from recbole_mml.benchmark.execute import execute, run_subprocess
from recbole_mml.benchmark.report import write_report
from recbole_mml.benchmark.results import KEY_COLUMNS, append_row, finished_run_ids
from recbole_mml.benchmark.spec import load_spec, plan_runs
from recbole_mml.errors import ConfigError


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
    """``run_recbole_mml.py benchmark ...``: exit code 1 if a run failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    spec = load_spec(args.config)
    labels = [label.strip() for label in args.labels.split(",") if label.strip()] if args.labels else None
    ran, skipped, failed = run_benchmark(spec, args.output_dir, args.dry_run, args.report_only, labels)
    out_dir = args.output_dir or spec["output_dir"]
    if not args.dry_run:
        print(f"{len(ran)} run(s) done, {len(skipped)} already in {os.path.join(out_dir, 'results.csv')}, "
              f"{len(failed)} failed; report: {os.path.join(out_dir, 'results.md')}")
    return 1 if failed else 0
