"""The benchmark command: run every planned run not yet in results.csv, then rebuild the report.

    python run_recbole_mml.py benchmark --config properties/benchmark/ml100k_smoke.yaml
    python run_recbole_mml.py benchmark --config my.yaml --dry-run      (the runs to do, with estimates)
    python run_recbole_mml.py benchmark --config my.yaml --report-only  (rebuild results.md)
    python run_recbole_mml.py benchmark --config my.yaml --seeds 2020   (one seed of every model first)
    python run_recbole_mml.py benchmark --config my.yaml --jobs 2       (two runs at a time, as Ray tasks)
    python run_recbole_mml.py benchmark --config my.yaml --hours 3      (only the runs whose estimate fits)
    python run_recbole_mml.py benchmark --config my.yaml --address=auto (the runs on an existing Ray cluster)
    python run_recbole_mml.py benchmark --config my.yaml --fill-per-user (per-user scores of older rows)
"""

import argparse
import math
import os
import sys
import time
from logging import getLogger

import pandas as pd
from tqdm import tqdm

from recbole_mml.benchmark.execute import execute, run_subprocess
from recbole_mml.benchmark.interrupt import interruptible
from recbole_mml.benchmark.report import under_way_note, write_report
from recbole_mml.benchmark.results import (
    KEY_COLUMNS, append_row, pending_runs, per_user_path, read_results, run_file, state_dir, write_per_user,
)
from recbole_mml.benchmark.spec import load_spec, plan_runs
from recbole_mml.errors import ConfigError


def _parser():
    parser = argparse.ArgumentParser(prog="run_recbole_mml.py benchmark",
                                     description="Run models x datasets x seeds from a yaml; resumable.")
    parser.add_argument("--config", required=True, help="benchmark yaml (see properties/benchmark/)")
    parser.add_argument("--output_dir", default=None, help="overrides the yaml's output_dir")
    parser.add_argument("--labels", default=None,
                        help="comma-separated model labels to run now (default: all); the report covers every run")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds of the yaml to run now (default: all), e.g. one seed of "
                             "every model before the rest")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the runs still to do, with estimated minutes, run nothing")
    parser.add_argument("--report-only", action="store_true", help="rebuild results.md from results.csv")
    parser.add_argument("--jobs", type=int, default=None,
                        help="run this many at a time as Ray tasks on a private local Ray (default: one "
                             "subprocess after another)")
    parser.add_argument("--address", default=None,
                        help="run as Ray tasks on an existing cluster: 'auto' or ip:port")
    parser.add_argument("--cpus_per_run", type=float, default=1, help="CPUs of each Ray task (its torch threads)")
    parser.add_argument("--gpus_per_run", type=float, default=0, help="GPUs of each Ray task (fractions share one)")
    parser.add_argument("--hours", type=float, default=None,
                        help="start a run only while its estimated wall time still ends within this many hours "
                             "of now (a job's time limit); a run no seed of whose setting has finished has no "
                             "estimate and is not started")
    parser.add_argument("--fill-per-user", action="store_true",
                        help="rerun the finished runs that kept no per-user test scores, to write them (each "
                             "rerun must reproduce its row's test metrics); results.csv is left as it is")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return parser


def _executions(spec, pending, out_dir, ray_options, start_by):
    """``(run, row, error)`` for every pending run: Ray tasks when ``ray_options`` says so, else one
    after another (a subprocess each, or in this process). A run whose time in ``start_by`` (run id
    -> latest start, epoch seconds) has passed when its turn comes is not started: ``(run, None, None)``."""
    if ray_options:
        from recbole_mml.benchmark.distributed import run_on_ray

        yield from run_on_ray(pending, per_user=True, out_dir=out_dir, every_s=spec["resume_every_s"],
                              start_by=start_by, **ray_options)
        return
    for run in pending:
        if time.time() > start_by.get(run["run_id"], math.inf):
            yield run, None, None
            continue
        log_path = os.path.join(out_dir, "logs", run_file(run["run_id"]) + ".log")
        resume = {"state_dir": state_dir(out_dir, run["run_id"]), "every_s": spec["resume_every_s"]}
        if spec["isolation"] == "subprocess":
            yield (run, *run_subprocess(run, log_path, spec.get("timeout"), per_user=True, **resume))
        else:
            yield run, execute(run["model"], run["dataset"], run["config"], per_user=True, **resume), None


def _selected(runs, spec, labels, seeds):
    """The runs of ``labels`` and ``seeds`` (None: all); a label or seed not in the yaml is an error."""
    if labels:
        known = [m["label"] for m in spec["models"]]
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise ConfigError(f"--labels: {unknown} not among the model labels {known}")
        runs = [r for r in runs if r["label"] in labels]
    if seeds:
        unknown = [seed for seed in seeds if seed not in spec["seeds"]]
        if unknown:
            raise ConfigError(f"--seeds: {unknown} not among the yaml's seeds {spec['seeds']}")
        runs = [r for r in runs if r["seed"] in seeds]
    return runs


def _print_pending(pending, results, out_dir):
    """One line per run still to do, with its estimated wall minutes where a seed of it has finished
    and, for a run stopped with a saved state, the epoch it goes on from."""
    estimates = pending_runs(pending, results, out_dir)
    for run in estimates.itertuples():
        line = run.run_id if pd.isna(run.est_min) else f"{run.run_id}  ~{run.left_min:.0f} min"
        if run.under_way:
            line += f"  ({under_way_note(run.saved_epoch, run.left_min, run.saved_min)})"
        print(line)
    known = estimates.left_min.dropna()
    print(f"{len(estimates)} run(s) to do; the {len(known)} with an estimate take about "
          f"{known.sum() / 60:.1f} hours of one thread", file=sys.stderr)


def _not_reproduced(row, recorded):
    """Why a rerun's test metrics differ from its row in results.csv ('' where they agree)."""
    for column, value in row.items():
        if (column.startswith("test_") and pd.notna(recorded.get(column))
                and not math.isclose(value, recorded[column], abs_tol=1e-9)):
            return (f"the rerun gave {column} {value:.4f}, results.csv has {recorded[column]:.4f}: not reproduced, "
                    "per-user scores not written")
    return ""


def _latest_starts(pending, results, out_dir, hours):
    """Run id -> the latest time (epoch seconds) it may start and still end within ``hours`` of now, by
    its estimate from the finished seeds of its setting (less what a stopped run already spent); a run
    without an estimate never may."""
    deadline = time.time() + hours * 3600
    left = pending_runs(pending, results, out_dir).set_index("run_id")["left_min"]
    return {run_id: deadline - minutes * 60 if pd.notna(minutes) else -math.inf for run_id, minutes in left.items()}


def run_benchmark(spec, out_dir=None, dry_run=False, report_only=False, labels=None, ray_options=None, seeds=None,
                  fill_per_user=False, hours=None):
    """Run every planned run not yet in results.csv; returns (ran, skipped, failed, late) run ids.

    A run killed before its row was written (the machine stopped, the process killed) goes on from
    its last saved epoch the next time it runs (its folder under ``checkpoints/``, see
    :mod:`recbole_mml.run_state`), with the result the uninterrupted run would have given.

    Each run's per-user test scores are written beside results.csv before its row is appended.
    ``ray_options`` (``address``, ``jobs``, ``cpus_per_run``, ``gpus_per_run``) runs them as Ray tasks,
    each row appended as its task finishes.

    ``labels`` and ``seeds`` restrict this invocation to some models and seeds, so cheap runs, or one
    seed of every model, can go before the rest; the results of all invocations share one results.csv.

    ``hours`` bounds this invocation (a job's time limit): a run starts only while its estimated end is
    within ``hours`` of the call; the others are ``late``, left for the next invocation.

    ``fill_per_user`` reruns instead the finished runs without per-user scores (rows from before they
    were kept) and writes their scores where the rerun reproduces the row's test metrics, the
    check that the scores belong to that row; results.csv is not changed.
    """
    out_dir = out_dir or spec["output_dir"]
    plan = plan_runs(spec)
    runs = _selected(plan, spec, labels, seeds)
    csv_path = os.path.join(out_dir, "results.csv")
    results = read_results(csv_path)
    done = set(results["run_id"])
    recorded = results.set_index("run_id")
    if fill_per_user:
        pending = [r for r in runs if r["run_id"] in done and not os.path.isfile(per_user_path(out_dir, r["run_id"]))]
        skipped = [r["run_id"] for r in runs if r not in pending]
    else:
        pending = [r for r in runs if r["run_id"] not in done]
        skipped = [r["run_id"] for r in runs if r["run_id"] in done]

    def report():
        results = pd.read_csv(csv_path)
        write_report(spec, results, out_dir, pending_runs(plan, results, out_dir))

    if dry_run or report_only:
        if dry_run:
            _print_pending(pending, results, out_dir)
        if report_only and len(results):
            report()
        return [], skipped, [], []
    os.makedirs(out_dir, exist_ok=True)
    start_by = _latest_starts(pending, results, out_dir, hours) if hours is not None else {}
    ran, failed, late = [], [], []
    with tqdm(total=len(pending), desc="benchmark", unit="run") as progress:  # closed on an interruption too
        for run, row, error in _executions(spec, pending, out_dir, ray_options, start_by):
            progress.update()
            progress.set_postfix_str(run["run_id"])
            if row is None and error is None:
                late.append(run["run_id"])
                continue
            if error:
                failed.append(run["run_id"])
                getLogger().error(f"benchmark run {run['run_id']} failed: {error}")
                tqdm.write(f"failed: {run['run_id']}: {error}")
                continue
            scores = row.pop("per_user", None)
            row.pop("earlier_wall_s", None)  # already in wall_time_s
            if fill_per_user:
                error = _not_reproduced(row, recorded.loc[run["run_id"]]) or ("" if scores else "no per-user scores")
                if error:
                    failed.append(run["run_id"])
                    tqdm.write(f"failed: {run['run_id']}: {error}")
                    continue
            if scores:
                write_per_user(out_dir, run["run_id"], scores)
            if not fill_per_user:
                record = {k: run[k] for k in KEY_COLUMNS}
                record.update(row)
                append_row(csv_path, record)
            ran.append(run["run_id"])
            report()
    return ran, skipped, failed, late


def main(argv=None):
    """``run_recbole_mml.py benchmark ...``: exit code 1 if a run failed or the benchmark was interrupted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    spec = load_spec(args.config)
    labels = [label.strip() for label in args.labels.split(",") if label.strip()] if args.labels else None
    seeds = None
    if args.seeds:
        try:
            seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
        except ValueError:
            raise ConfigError(f"--seeds: expected comma-separated integers, got {args.seeds!r}") from None
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs: expected an integer >= 1, got {args.jobs}")
    if args.hours is not None and not args.hours > 0:
        raise ConfigError(f"--hours: expected a number of hours > 0, got {args.hours}")
    ray_options = None
    if args.jobs or args.address:
        ray_options = {"address": args.address, "jobs": args.jobs, "cpus_per_run": args.cpus_per_run,
                       "gpus_per_run": args.gpus_per_run}
    out_dir = args.output_dir or spec["output_dir"]
    with interruptible(f"benchmark interrupted; the finished runs are in {os.path.join(out_dir, 'results.csv')}; "
                       f"the same command goes on from there: {' '.join(['python run_recbole_mml.py benchmark', *argv])}"):
        ran, skipped, failed, late = run_benchmark(spec, args.output_dir, args.dry_run, args.report_only, labels,
                                                   ray_options, seeds, args.fill_per_user, args.hours)
    if args.fill_per_user and not args.dry_run:
        print(f"per-user scores written for {len(ran)} finished run(s), {len(failed)} failed; "
              f"report: {os.path.join(out_dir, 'results.md')}")
    elif not args.dry_run:
        print(f"{len(ran)} run(s) done, {len(skipped)} already in {os.path.join(out_dir, 'results.csv')}, "
              f"{len(failed)} failed; report: {os.path.join(out_dir, 'results.md')}")
        if late:
            print(f"{len(late)} not started: no estimate, or their estimate ends past --hours {args.hours:g} "
                  f"(--dry-run lists them): {', '.join(late)}")
    return 1 if failed else 0
