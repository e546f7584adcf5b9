"""Time to quality: wall time against validation and test Recall@20 / NDCG@20, evaluation by evaluation,
with the epoch time next to the plain-torch floor measured in the same run.

    python benchmarks/time_to_quality.py --config properties/fast/gowalla.yaml [--minutes 60] [--label NAME]
                                         [--key=value ...]

Protocol: model selection and early stopping on the validation part only (``[train, valid, test]``).
For the curve, the test part is also scored at every validation, with that time excluded from the
wall clock; the reported test numbers are those of the best validation epoch, which is what
evaluating the best checkpoint once at the end gives. Training stops at early stopping, at
``epochs``, or when the wall clock (training + validation) passes ``--minutes``. A run killed before
its row was written goes on, when started again with the same label and settings, from its last
saved epoch (``<label>/run_state/``, :mod:`recbole_mml.run_state`), with the same curve and row.

Results go to ``benchmarks/results/time_to_quality/``: ``<label>/curve.csv`` (one row per
evaluation), ``<label>/per_user_test.csv.gz`` (per-user test metrics of the best epoch, for paired
tests) and one row per run in ``results.csv``.
"""

import argparse
import fcntl
import os
import re
import subprocess
import sys
import tempfile
import time

import pandas as pd

import recbole_mml.quick_start  # noqa: F401  (applies the compatibility fixes)
from recbole.utils import init_logger, init_seed

from recbole_mml import compat, run_state
from recbole_mml.collector import eval_user_tokens, per_user_topk
from recbole_mml.quick_start import build_config, build_trainer, prepare_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "time_to_quality")
FLOOR_SCRIPT = os.path.join(ROOT, "..", "shared", "bench", "floor_epoch.py")
METRICS = ("recall@20", "ndcg@20")
PROTOCOL_VALID, PROTOCOL_FULL = "[train, valid, test]", "[fulltrain, test, test]"


class BudgetSpent(Exception):
    """The wall-clock budget ended the run (after the evaluation that passed it was recorded)."""


class CurveMixin:
    """Records (wall time, validation, test) at every validation; the test scoring is off the clock."""

    def start_curve(self, test_data, budget_s, path):
        self.curve_test, self.curve_budget, self.curve_path = test_data, budget_s, path
        self.curve, self.train_seconds, self.valid_seconds = [], [], []
        self.best_valid, self.best_per_user = None, None
        self.paused, self.paused_cpu, self.epoch_done = 0.0, 0.0, -1
        self.started, self.started_cpu = time.perf_counter(), time.process_time()

    def curve_state(self):
        """The curve so far, saved with a resumable run's state (:mod:`recbole_mml.run_state`)."""
        return {"curve": list(self.curve), "valid_seconds": list(self.valid_seconds), "best_valid": self.best_valid,
                "best_per_user": self.best_per_user, "epoch_done": self.epoch_done, "wall": self.wall(),
                "cpu": self.cpu()}

    def restore_curve(self, saved):
        """Go on with a killed attempt's curve; its clocks go on from where they stood."""
        self.curve, self.valid_seconds = saved["curve"], saved["valid_seconds"]
        self.best_valid, self.best_per_user, self.epoch_done = saved["best_valid"], saved["best_per_user"], saved["epoch_done"]
        self.started, self.paused = time.perf_counter() - saved["wall"], 0.0
        self.started_cpu, self.paused_cpu = time.process_time() - saved["cpu"], 0.0

    def wall(self):
        return time.perf_counter() - self.started - self.paused

    def cpu(self):
        """CPU seconds of this process on the clock: wall time inflated by other jobs shows up here."""
        return time.process_time() - self.started_cpu - self.paused_cpu

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        start = time.perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        self.train_seconds.append(time.perf_counter() - start)
        self.epoch_done = epoch_idx
        return loss

    def _valid_epoch(self, valid_data, show_progress=False):
        start = time.perf_counter()
        score, result = super()._valid_epoch(valid_data, show_progress)
        self.valid_seconds.append(time.perf_counter() - start)
        wall, cpu, pause, pause_cpu = self.wall(), self.cpu(), time.perf_counter(), time.process_time()
        test = self.evaluate(self.curve_test, load_best_model=False)
        row = {"epoch": self.epoch_done + 1, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
               "train_s": round(sum(self.train_seconds), 2)}
        row.update({f"valid_{m}": float(result[m]) for m in METRICS})
        row.update({f"test_{m}": float(test[m]) for m in METRICS})
        self.curve.append(row)
        pd.DataFrame(self.curve).to_csv(self.curve_path, index=False)
        if self.best_valid is None or score > self.best_valid:
            self.best_valid = score
            struct = self.eval_collector.last_struct
            self.best_per_user = per_user_topk(struct, self.config) if struct is not None else None
        print(f"epoch {row['epoch']:>4}  wall {wall:8.1f}s  valid ndcg@20 {row['valid_ndcg@20']:.4f}  "
              f"test recall@20 {row['test_recall@20']:.4f} ndcg@20 {row['test_ndcg@20']:.4f}", flush=True)
        self.paused += time.perf_counter() - pause
        self.paused_cpu += time.process_time() - pause_cpu
        if wall > self.curve_budget:
            raise BudgetSpent()
        return score, result


def floor_epoch(config, n_users, n_items, n_train, fraction=0.125):
    """Seconds of the plain-torch floor (sparse Adam, negatives shared by the batch) for this run's sizes.

    The floor scores the same number of candidates per batch: N shared (batch, mixed adds the batch),
    the pool (pool) or the batch (in_batch). It runs ``fraction`` of an epoch's batches, scaled up:
    its cost is the same at every step.
    """
    sharing, n, batch = config["neg_sharing"], config["num_negatives"], config["train_batch_size"]
    scored = {"batch": n, "pool": config["neg_pool_size"], "in_batch": batch, "mixed": batch + n}.get(sharing, n)
    env = dict(os.environ, SHARED="0" if sharing == "row" else "1", SPARSE="1", THREADS=str(torch_threads(config)))
    positives = max(int(n_train * fraction), 50 * batch)  # enough steps to be above the script's 10 ms resolution
    out = subprocess.run([sys.executable, FLOOR_SCRIPT, str(n_users), str(n_items), str(positives), str(scored), str(batch)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"epoch_s=([0-9.]+)", out).group(1)) * n_train / positives


def run_settings(config, label):
    """The columns of a results row that say what was run."""
    return {
        "label": label, "dataset": config["dataset"], "model": config["model"],
        "loss_type": config["loss_type"] if config["model"].startswith("MML") else "",
        "neg_sharing": config["neg_sharing"] or "", "num_negatives": config["num_negatives"] or "",
        "neg_pool_size": config["neg_pool_size"] if config["neg_sharing"] == "pool" else "",
        "learner": config["learner"], "learning_rate": config["learning_rate"],
        "train_batch_size": config["train_batch_size"], "threads": torch_threads(config), "seed": config["seed"],
        "device": device_name(config),
    }


def device_name(config):
    """Where the run trained: wall times are comparable only on the same device."""
    import torch

    device = torch.device(config["device"])
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def write_per_user(out_dir, dataset, test_data, values):
    """Per-user test metrics, keyed by the dataset's user tokens, for paired tests over users."""
    per_user = pd.DataFrame({"user_id": eval_user_tokens(dataset, test_data), **values})
    per_user.to_csv(os.path.join(out_dir, "per_user_test.csv.gz"), index=False, float_format="%.5g")


def torch_threads(config):
    import torch

    return int(config["torch_num_threads"] or torch.get_num_threads())


def run(config_file, overrides, minutes, label, results=RESULTS):
    config = build_config(config_dict=None, config_file_list=[config_file], cmd_args=overrides)
    out_dir = os.path.join(results, label)
    os.makedirs(out_dir, exist_ok=True)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset, train_data, valid_data, test_data = prepare_data(config)
    sizes = (dataset.user_num - 1, dataset.item_num - 1, len(train_data._dataset))
    # the floor is timed on the CPU threads of the run; off the machine that holds the script (or on a GPU) there is none
    timed = config["model"].startswith("MML") and os.path.isfile(FLOOR_SCRIPT) and str(config["device"]) == "cpu"
    floors = [floor_epoch(config, *sizes)] if timed else []
    trainer = build_trainer(config, dataset, train_data)
    trainer.__class__ = type(f"Curve{type(trainer).__name__}", (CurveMixin, type(trainer)), {})
    trainer.start_curve(test_data, minutes * 60, os.path.join(out_dir, "curve.csv"))
    # a killed attempt of this run (same yaml, overrides and budget) goes on from its last saved epoch
    state_folder = os.path.join(out_dir, "run_state")
    with open(config_file, encoding="utf-8") as f:
        setup = {"config": f.read(), "overrides": [o for o in overrides if not o.startswith("--data_path=")],
                 "minutes": minutes}
    run_state.resumable(trainer, train_data, state_folder, setup, trainer.train_seconds,
                        (trainer.curve_state, trainer.restore_curve))
    stopped = "early stopping or epochs"
    try:
        trainer.fit(train_data, valid_data, verbose=False, saved=False, show_progress=False)
    except BudgetSpent:
        stopped = f"{minutes:g} min budget"
    wall = trainer.wall()
    if floors:
        floors.append(floor_epoch(config, *sizes))
    curve = pd.DataFrame(trainer.curve)
    best = curve.loc[curve["valid_ndcg@20"].idxmax()]
    if trainer.best_per_user is not None:
        write_per_user(out_dir, dataset, test_data, trainer.best_per_user)
    epoch_s = sum(trainer.train_seconds) / len(trainer.train_seconds)
    floor_s = sum(floors) / len(floors) if floors else float("nan")
    row = {
        **run_settings(config, label),
        "epochs_run": int(curve["epoch"].max()), "best_epoch": int(best["epoch"]),
        "best_valid_ndcg@20": best["valid_ndcg@20"], "test_recall@20": best["test_recall@20"],
        "test_ndcg@20": best["test_ndcg@20"], "time_to_best_s": best["wall_s"], "wall_s": round(wall, 1),
        "cpu_s": round(trainer.cpu(), 1),
        "epoch_s": round(epoch_s, 2), "eval_s": round(sum(trainer.valid_seconds) / len(trainer.valid_seconds), 2),
        "floor_epoch_s": round(floor_s, 2), "epoch_over_floor": round(epoch_s / floor_s, 2) if floor_s > 0 else "",
        "protocol": PROTOCOL_VALID, "stopped": stopped, "config": os.path.relpath(os.path.abspath(config_file), ROOT),
        "overrides": " ".join(o for o in overrides if not o.startswith("--data_path=")),
    }
    record_row(os.path.join(results, "results.csv"), row)
    run_state.finished(state_folder)
    print(pd.DataFrame([row]).T.to_string(header=False))
    return row


def record_row(table, row):
    """Replace the run's row in ``table`` (by label), atomically and under a lock: two benchmark
    processes may finish at the same moment."""
    with open(table + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = pd.read_csv(table) if os.path.isfile(table) else pd.DataFrame()
        rows = pd.concat([rows[rows.label != row["label"]] if len(rows) else rows, pd.DataFrame([row])],
                         ignore_index=True)
        rows.to_csv(table + ".tmp", index=False)
        os.replace(table + ".tmp", table)


def from_curve(config_file, overrides, label, results=RESULTS):
    """The row of a run that was stopped before it wrote one (a killed process), from its curve:
    the test numbers of its best validation so far; no per-user scores and no floor."""
    config = build_config(config_dict=None, config_file_list=[config_file], cmd_args=overrides)
    curve = pd.read_csv(os.path.join(results, label, "curve.csv"))
    best, last = curve.loc[curve["valid_ndcg@20"].idxmax()], curve.iloc[-1]
    row = {**run_settings(config, label), "epochs_run": int(last["epoch"]), "best_epoch": int(best["epoch"]),
           "best_valid_ndcg@20": best["valid_ndcg@20"], "test_recall@20": best["test_recall@20"],
           "test_ndcg@20": best["test_ndcg@20"], "time_to_best_s": best["wall_s"], "wall_s": last["wall_s"],
           "cpu_s": last["cpu_s"], "epoch_s": round(last["train_s"] / last["epoch"], 2), "protocol": PROTOCOL_VALID,
           "stopped": f"interrupted after epoch {int(last['epoch'])}; row from its curve",
           "config": os.path.relpath(config_file, ROOT),
           "overrides": " ".join(o for o in overrides if not o.startswith("--data_path="))}
    record_row(os.path.join(results, "results.csv"), row)
    return row


def fulltrain(config_file, overrides, epochs, label, results=RESULTS):
    """The published protocol without selecting on test: train on the whole published training set
    for ``epochs`` (the best epoch that early stopping chose on valid), then score test once."""
    config = build_config(config_dict={"benchmark_filename": ["fulltrain", "test", "test"], "epochs": epochs},
                          config_file_list=[config_file], cmd_args=overrides)
    out_dir = os.path.join(results, label)
    os.makedirs(out_dir, exist_ok=True)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset, train_data, _, test_data = prepare_data(config)
    trainer = build_trainer(config, dataset, train_data)
    # a killed attempt (same yaml, overrides and epochs) goes on from its last saved epoch; the CPU
    # seconds of the earlier attempts are saved with the state
    state_folder, earlier_cpu = os.path.join(out_dir, "run_state"), [0.0]
    with open(config_file, encoding="utf-8") as f:
        setup = {"config": f.read(), "overrides": [o for o in overrides if not o.startswith("--data_path=")],
                 "fulltrain_epochs": epochs}
    wall, cpu = time.perf_counter(), time.process_time()

    def cpu_so_far():
        return earlier_cpu[0] + time.process_time() - cpu

    def restore_cpu(saved):
        earlier_cpu[0] = saved

    earlier_s = run_state.resumable(trainer, train_data, state_folder, setup, extra=(cpu_so_far, restore_cpu))
    trainer.fit(train_data, None, verbose=False, saved=False, show_progress=False)  # no evaluation at all
    wall, cpu = earlier_s + time.perf_counter() - wall, cpu_so_far()
    start = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=False)
    eval_s = time.perf_counter() - start
    scores = {f"test_{m}": float(test[m]) for m in METRICS}
    pd.DataFrame([{"epoch": epochs, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), **scores}]).to_csv(
        os.path.join(out_dir, "curve.csv"), index=False)
    write_per_user(out_dir, dataset, test_data, per_user_topk(trainer.eval_collector.last_struct, config))
    row = {**run_settings(config, label), "epochs_run": epochs, "best_epoch": epochs, **scores,
           "time_to_best_s": round(wall, 1), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
           "epoch_s": round(wall / epochs, 2), "eval_s": round(eval_s, 2), "protocol": PROTOCOL_FULL,
           "stopped": f"{epochs} epochs, chosen on valid", "config": os.path.relpath(config_file, ROOT),
           "overrides": " ".join(o for o in overrides if not o.startswith("--data_path="))}
    record_row(os.path.join(results, "results.csv"), row)
    run_state.finished(state_folder)
    print(pd.DataFrame([row]).T.to_string(header=False))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="yaml with model, dataset and settings")
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget (train + valid)")
    parser.add_argument("--label", help="name of the run (default: the config's file name)")
    parser.add_argument("--results", default=RESULTS, help="results folder (default: the committed one)")
    parser.add_argument("--retrain", action="store_true",
                        help="then train on fulltrain for the best epoch chosen on valid and score test once "
                             "(label <label>-fulltrain)")
    parser.add_argument("--from_curve", action="store_true",
                        help="only write the row of an interrupted run (label as given) from its curve.csv")
    parser.add_argument("--fulltrain_epochs", type=int,
                        help="only the fulltrain run, for this many epochs (label as given)")
    args, overrides = parser.parse_known_args(argv)
    compat.quiet_recbole_warnings()
    label = args.label or os.path.splitext(os.path.basename(args.config))[0]
    # RecBole's data_path is relative to the working folder: resolve it before leaving the repository
    given = [o for o in overrides if o.startswith("--data_path=")]
    data_path = os.path.abspath(given[0].split("=", 1)[1] if given else os.path.join(ROOT, "dataset"))
    overrides = [o for o in overrides if not o.startswith("--data_path=")] + [f"--data_path={data_path}"]
    results, config_file, here = os.path.abspath(args.results), os.path.abspath(args.config), os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # RecBole's logs and checkpoints stay out of the working tree
        try:
            if args.from_curve:
                return from_curve(config_file, overrides, label, results)
            if args.fulltrain_epochs:
                return fulltrain(config_file, overrides, args.fulltrain_epochs, label, results)
            row = run(config_file, overrides, args.minutes, label, results)
            if args.retrain:
                fulltrain(config_file, overrides, int(row["best_epoch"]), f"{label}-fulltrain", results)
            return row
        finally:
            os.chdir(here)


if __name__ == "__main__":
    main()
