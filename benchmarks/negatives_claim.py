"""MML against CCL (and SSM, BSL) at N = 10, 100 and 800 negatives per positive, trained until early
stopping on valid, several seeds: the paper's claim, converged, with per-user scores for paired tests;
and MF-BPR (one negative per row) on the same path, the baseline every published table starts from.

    python benchmarks/negatives_claim.py --list                     # the plan: done, under way, pending, estimated cost
    python benchmarks/negatives_claim.py [--dataset gowalla] [--only MML CCL] [--forms row10] [--labels L ...] [--max_runs K]
    python benchmarks/negatives_claim.py --jobs 2 --hours 2.5          # two at a time, only runs whose estimate fits

Every run is ``benchmarks/time_to_quality.py`` on ``properties/fast/<dataset>.yaml`` (MMLMF, sparse
Adam lr 5e-3, batch 1024, ``[train, valid, test]``, early stopping after 5 evaluations without a better
valid NDCG@20) with the loss and negatives of its plan entry; rows and per-user test scores go to
``benchmarks/results/negatives/``. Runs whose row is there already are skipped, so the plan resumes
from the committed rows; a run killed midway goes on from its last saved epoch. The claim's rows come first (MML and CCL at N = 10 and 100, both datasets,
seed by seed), then N = 800, then the first seed's MML and CCL runs retrained
on the whole published training set for the epochs early stopping chose (``[fulltrain, test, test]``,
test scored once: the published protocol without selecting on test), then MF-BPR, then SSM and BSL,
then BSL at 800 retrained on fulltrain (it holds the best published MF numbers), then CCL at the margin
and negative weight chosen on valid (``CCL-tuned``: SimpleX's setting was tuned for another learner) at
every N and seed, and retrained on fulltrain.

Negatives: N = 10 per row is the published form. N = 100 per row costs 25x the shared form on a CPU,
so it is drawn per row from a per-batch pool of P = 2000 items (``neg_sharing: pool``, see the pool
sweep in BENCHMARKS.md). N = 800 per row does not fit the budget at all: it runs shared by the batch
(``neg_sharing: batch``), and its label says so. MF-BPR draws one negative per row, as published, with
the published L2 weight and its own learning rate (chosen on valid); its learner is the fast config's.
"""

import argparse
import os
import subprocess
import sys
import threading
import time

import pandas as pd

from recbole_mml import run_state
from recbole_mml.benchmark.interrupt import interruptible
from recbole_mml.errors import BenchmarkInterrupted

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "negatives")
DATASETS = ("gowalla", "yelp2018")
SEEDS = (2020, 2021, 2022)
FULLTRAIN = "-fulltrain"  # label suffix of a retraining on the published training set
PROTOCOL_VALID, PROTOCOL_FULL = "[train, valid, test]", "[fulltrain, test, test]"
# label part -> (neg_sharing, num_negatives, neg_pool_size)
FORMS = {"row1": ("row", 1, None), "row10": ("row", 10, None), "pool100": ("pool", 100, 2000),
         "shared800": ("batch", 800, None)}
LOSSES = ("MML", "CCL", "CCL-tuned", "SSM", "BSL", "BPR")
SIMPLEX_CCL = (0.9, 150)  # SimpleX's margin and negative weight on Gowalla and Yelp2018: the claim's CCL
# CCL-tuned: CCL at the margin and negative weight with the best valid NDCG@20 on this fast path
# (benchmarks/results/ccl_setting/: 800 shared, seed 2020; SimpleX's setting was tuned with another learner,
# batch and sampler). Yelp2018: weight 50 reached 0.0669 against SimpleX's 150 at 0.0599 (margin 0.8 at 150:
# 0.0600; weight 400: 0.0477; weight 20 stopped behind). Gowalla: SimpleX's 150 (0.1165) against weight 300
# (0.1115) and 50 (stopped behind).
CCL_TUNED = {"gowalla": SIMPLEX_CCL, "yelp2018": (0.9, 50)}
BPR_REG_WEIGHT = 1e-4  # MF-BPR's L2 weight in the LightGCN and SimpleX papers' baselines
# MF-BPR's learning rate, chosen on Gowalla's valid split (benchmarks/results/bpr_lr/) and used on both
# datasets: best valid NDCG@20 0.0700 at the fast config's 5e-3 (stopped at epoch 56), 0.0862 at 1e-3,
# 0.0847 at 5e-4
BPR_LEARNING_RATE = 1e-3
# The BSL authors' MF settings per dataset (the logs of their best runs): t1, the temperature of SSM and
# BSL (their softmax-loss runs use the same t1), and t2, BSL's power of the negative term.
TEMPERATURE = {"gowalla": 0.08, "yelp2018": 0.11}
BSL_NEG_POWER = {"gowalla": 1.22, "yelp2018": 1.10}


def loss_args(loss, dataset):
    """The loss's overrides: MML keeps the dataset's author setting from the fast yaml, the others replace it."""
    if loss in ("CCL", "CCL-tuned"):
        margin, weight = SIMPLEX_CCL if loss == "CCL" else CCL_TUNED[dataset]
        return ["--loss_type=CCL", f"--ccl_margin={margin:g}", f"--neg_weight={weight:g}"]
    if loss == "SSM":
        return ["--loss_type=SSM", f"--temperature={TEMPERATURE[dataset]}"]
    if loss == "BSL":
        return ["--loss_type=BSL", f"--temperature={TEMPERATURE[dataset]}", f"--bsl_neg_power={BSL_NEG_POWER[dataset]}"]
    if loss == "BPR":
        return ["--loss_type=BPR", f"--reg_weight={BPR_REG_WEIGHT:g}", f"--learning_rate={BPR_LEARNING_RATE:g}"]
    return []


def plan():
    """The runs in the order they should finish: (label, dataset, loss, form, seed)."""
    runs = []
    for seed in SEEDS:  # the claim first: MML and CCL at 10 and 100, seed by seed
        for form in ("row10", "pool100"):
            for dataset in DATASETS:
                runs += [(label(dataset, loss, form, seed), dataset, loss, form, seed) for loss in ("MML", "CCL")]
    for seed in SEEDS:
        for dataset in DATASETS:
            runs += [(label(dataset, loss, "shared800", seed), dataset, loss, "shared800", seed) for loss in ("MML", "CCL")]
    for form in ("row10", "pool100", "shared800"):  # the published protocol for the main rows: retrain on fulltrain
        for dataset in DATASETS:
            runs += [(label(dataset, loss, form, SEEDS[0]) + FULLTRAIN, dataset, loss, form, SEEDS[0])
                     for loss in ("MML", "CCL")]
    for seed in SEEDS:  # MF-BPR: the published tables' baseline, one negative per row
        runs += [(label(dataset, "BPR", "row1", seed), dataset, "BPR", "row1", seed) for dataset in DATASETS]
    for seed in SEEDS:
        for form in ("pool100", "shared800"):
            for dataset in DATASETS:
                runs += [(label(dataset, loss, form, seed), dataset, loss, form, seed) for loss in ("SSM", "BSL")]
    # BSL holds the best published MF numbers: under their protocol (without selecting on test) too
    runs += [(label(dataset, "BSL", "shared800", SEEDS[0]) + FULLTRAIN, dataset, "BSL", "shared800", SEEDS[0])
             for dataset in DATASETS]
    # MML against CCL at its setting chosen on valid, at every N and seed, then retrained on fulltrain
    # (where that setting is SimpleX's, the CCL rows are those runs already)
    tuned = [dataset for dataset in DATASETS if CCL_TUNED[dataset] != SIMPLEX_CCL]
    for seed in SEEDS:
        for form in ("row10", "pool100", "shared800"):
            runs += [(label(dataset, "CCL-tuned", form, seed), dataset, "CCL-tuned", form, seed) for dataset in tuned]
    for form in ("row10", "pool100", "shared800"):
        runs += [(label(dataset, "CCL-tuned", form, SEEDS[0]) + FULLTRAIN, dataset, "CCL-tuned", form, SEEDS[0])
                 for dataset in tuned]
    return runs


def label(dataset, loss, form, seed):
    return f"{dataset}-{loss.lower()}-{form}-s{seed}"


def loss_names(rows):
    """Each row's loss as the plan names it: a CCL-tuned run trains with ``loss_type`` CCL, under its own label."""
    tuned = rows.label.str.contains("-ccl-tuned-", regex=False)
    return rows.loss_type.where(~tuned, "CCL-tuned")


def command(dataset, loss, form, seed, results=RESULTS, minutes=240, fulltrain_epochs=None):
    """The run's ``time_to_quality.py`` command; with ``fulltrain_epochs``, its retraining on fulltrain."""
    sharing, n, pool = FORMS[form]
    name = label(dataset, loss, form, seed)
    args = [sys.executable, os.path.join(ROOT, "benchmarks", "time_to_quality.py"),
            "--config", os.path.join(ROOT, "properties", "fast", f"{dataset}.yaml"), "--results", results]
    args += (["--label", name + FULLTRAIN, "--fulltrain_epochs", str(fulltrain_epochs)] if fulltrain_epochs
             else ["--label", name, "--minutes", str(minutes)])
    args += [f"--neg_sharing={sharing}", f"--num_negatives={n}", f"--seed={seed}", *loss_args(loss, dataset)]
    return args + ([f"--neg_pool_size={pool}"] if pool else [])


def best_epoch(done, name):
    """The epoch early stopping chose for run ``name`` (None while it has no finished row)."""
    row = done[done.label == name]
    return int(row.best_epoch.iloc[0]) if len(row) else None


def finished(results=RESULTS):
    """Rows of runs that ended by early stopping or their epochs (not interrupted ones)."""
    path = os.path.join(results, "results.csv")
    if not os.path.isfile(path):
        return pd.DataFrame(columns=["label", "dataset", "neg_sharing", "wall_s", "stopped"])
    rows = pd.read_csv(path)
    return rows[~rows.stopped.astype(str).str.startswith("interrupted")]


def devices(rows):
    """Where each row's run trained; rows from before the ``device`` column ran on the CPU."""
    device = rows["device"] if "device" in rows else pd.Series(index=rows.index, dtype=object)
    return device.fillna("cpu")


def with_protocol(runs):
    """Rows written before the ``protocol`` column existed ran ``[train, valid, test]``."""
    protocol = runs["protocol"] if "protocol" in runs else pd.Series(index=runs.index, dtype=object)
    return runs.assign(protocol=protocol.fillna(PROTOCOL_VALID))


def form_minutes(done):
    """Mean wall minutes of the finished ``[train, valid, test]`` CPU runs per (dataset, form), and per
    (dataset, form, loss): losses stop at different epochs (CCL-tuned on Yelp2018 runs a third longer)."""
    cpu = done[~done.label.str.endswith(FULLTRAIN) & (devices(done) == "cpu")]
    minutes = {}
    for d in DATASETS:
        for f in FORMS:
            same = cpu[(cpu.dataset == d) & cpu.label.str.contains(f"-{f}-")]
            minutes[d, f] = same.wall_s.mean() / 60
            if len(same):
                by_loss = same.groupby(loss_names(same)).wall_s.mean() / 60
                minutes.update({(d, f, loss): value for loss, value in by_loss.items()})
    return minutes


def estimate_minutes(minutes, dataset, form, proxies=None, loss=None):
    """Wall minutes of a pending run on one CPU thread, and what the estimate rests on.

    In order: the mean of finished CPU runs of the same dataset, negatives and ``loss``, then of the same
    dataset and negatives, any loss (``minutes``, from :func:`form_minutes`); that dataset's runs of another form scaled by the ratio the other dataset
    measured between the two forms; for N = 800 shared, the fast config's own runs with 1000 shared
    negatives (``proxies``: the time-to-quality rows). NaN when none applies."""
    if loss is not None and pd.notna(minutes.get((dataset, form, loss))):
        return minutes[dataset, form, loss], "finished runs, same dataset, negatives and loss"
    if pd.notna(minutes[dataset, form]):
        return minutes[dataset, form], "finished runs, same dataset and negatives"
    for other in (d for d in DATASETS if d != dataset):
        for base in FORMS:
            ratio = minutes[other, form] / minutes[other, base]
            if pd.notna(ratio) and pd.notna(minutes[dataset, base]):
                return minutes[dataset, base] * ratio, f"{dataset} {base} x {other}'s {form} / {base}"
    if form == "shared800" and proxies is not None and len(proxies):
        proxies = with_protocol(proxies)
        same = proxies[(proxies.dataset == dataset) & (proxies.neg_sharing == "batch")
                       & (proxies.num_negatives == 1000) & (proxies.protocol == PROTOCOL_VALID)]
        if len(same):
            return same.wall_s.mean() / 60, f"{dataset}'s fast config with 1000 shared"
    return float("nan"), "not measured yet"


def status(results=RESULTS):
    """The plan with each run's state (done, pending, or under way: stopped with a saved state, which
    it goes on from at ``saved_epoch``) and, for the others, its estimated wall minutes, what is left
    of them, and their basis (the fast configs' own runs are read from ``time_to_quality/`` beside
    ``results``)."""
    done = finished(results)
    fast = finished(os.path.join(os.path.dirname(os.path.abspath(results)), "time_to_quality"))
    minutes = form_minutes(done)
    rows = []
    for name, dataset, loss, form, seed in plan():
        state = "done" if name in set(done.label) else "pending"
        base = done[done.label == name[:-len(FULLTRAIN)]] if name.endswith(FULLTRAIN) else done.iloc[:0]
        if len(base):  # fulltrain for the chosen epochs, no validation
            estimate = base.wall_s.iloc[0] / 60 * base.best_epoch.iloc[0] / base.epochs_run.iloc[0]
            basis = "its valid run's time for the chosen epochs"
        else:
            estimate, basis = estimate_minutes(minutes, dataset, form, fast, loss)
            if name.endswith(FULLTRAIN):
                basis = "as its valid run (not run yet), an upper bound"
        protocol = PROTOCOL_FULL if name.endswith(FULLTRAIN) else PROTOCOL_VALID
        saved = run_state.progress(os.path.join(results, name, "run_state")) if state == "pending" else None
        if saved is not None:  # stopped with a saved state: it goes on from there
            state = "under way"
        saved_min = saved["wall_s"] / 60 if saved and saved["wall_s"] is not None else 0.0
        pending = state != "done"
        rows.append({"label": name, "dataset": dataset, "loss": loss, "negatives": form, "protocol": protocol,
                     "seed": seed, "state": state, "est_min": round(estimate, 1) if pending else None,
                     "left_min": round(max(estimate - saved_min, 0), 1) if pending else None,
                     "saved_epoch": saved["epoch"] if saved else None, "est_basis": basis if pending else None})
    return pd.DataFrame(rows).astype({"saved_epoch": "Int64"})


def run_plan(runs, results, jobs=1, max_runs=0, deadline=None):
    """Run the plan's pending ``runs`` in order, ``jobs`` at a time, each a ``time_to_quality.py`` process.

    A run finished meanwhile by another driver is skipped; a fulltrain run waits for its valid run's row;
    with ``deadline`` (epoch seconds) a run starts only if its estimate ends before it, so a budget is
    not cut mid-run. After a failure no run starts. SIGTERM or Ctrl+C stops the runs under way (each
    goes on from its last saved epoch next time) and raises BenchmarkInterrupted. Returns the labels of
    the runs that failed."""
    lock, queue, started, failed, procs = threading.Lock(), list(runs), [], [], set()
    stopping = threading.Event()

    def take():
        with lock:
            if failed or stopping.is_set() or (max_runs and len(started) >= max_runs):
                return None
            done = finished(results)
            done_labels = set(done.label)
            for run in list(queue):
                if run.label in done_labels:
                    queue.remove(run)
                    continue
                epochs = None
                if run.label.endswith(FULLTRAIN):
                    epochs = best_epoch(done, run.label[:-len(FULLTRAIN)])
                    if epochs is None:  # its valid run has no row yet: nothing to retrain
                        continue
                if deadline and not (pd.notna(run.left_min) and time.time() + run.left_min * 60 < deadline):
                    continue
                queue.remove(run)
                started.append(run.label)
                return run, epochs
            return None

    def worker():
        while (item := take()) is not None:
            run, epochs = item
            print(f"== {run.label}", flush=True)
            with lock:
                if stopping.is_set():
                    return
                proc = subprocess.Popen(command(run.dataset, run.loss, run.negatives, run.seed, results,
                                                fulltrain_epochs=epochs))
                procs.add(proc)
            if proc.wait() != 0 and not stopping.is_set():
                with lock:
                    failed.append(run.label)

    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    message = (f"negatives_claim: interrupted; the finished runs are in {os.path.join(results, 'results.csv')}, "
               "and the same command goes on from there")
    with interruptible(message):
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:  # on an interruption: no new run, and the runs under way end with this process
            stopping.set()
            with lock:
                for proc in procs:
                    if proc.poll() is None:
                        proc.terminate()
            for proc in procs:
                proc.wait()
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the plan and stop")
    parser.add_argument("--dataset", choices=DATASETS, nargs="+", default=list(DATASETS))
    parser.add_argument("--only", nargs="+", choices=sorted(LOSSES), help="these losses only")
    parser.add_argument("--forms", nargs="+", choices=sorted(FORMS), help="these negatives only")
    parser.add_argument("--labels", nargs="+", help="these runs only (labels as --list prints them)")
    parser.add_argument("--max_runs", type=int, default=0, help="stop after this many runs (0: all pending)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at a time, one thread each (default 1; two on a 2-core machine)")
    parser.add_argument("--hours", type=float, default=0,
                        help="start a run only if its estimate ends within this many hours (0: no limit)")
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.hours < 0:
        parser.error(f"--jobs: expected an integer >= 1, got {args.jobs}" if args.jobs < 1
                     else f"--hours: expected a number >= 0, got {args.hours}")
    results = os.path.abspath(args.results)
    table = status(results)
    unknown = sorted(set(args.labels or ()) - set(table.label))
    if unknown:
        parser.error(f"--labels: not in the plan: {', '.join(unknown)} (--list prints the plan)")
    if args.list:
        print(table.astype(object).where(table.notna(), "").to_string(index=False))
        return 0
    runs = [run for run in table.itertuples()
            if run.state != "done" and run.dataset in args.dataset and (not args.only or run.loss in args.only)
            and (not args.forms or run.negatives in args.forms) and (not args.labels or run.label in args.labels)]
    deadline = time.time() + args.hours * 3600 if args.hours else None
    try:
        failed = run_plan(runs, results, jobs=args.jobs, max_runs=args.max_runs, deadline=deadline)
    except BenchmarkInterrupted as e:
        print(e, file=sys.stderr)
        return 1
    for name in failed:
        print(f"negatives_claim: run {name} failed (its output above); no run was started after it", file=sys.stderr)
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
