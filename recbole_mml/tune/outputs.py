"""A search's outputs in ``--output``: ``trials.csv`` (one row per trial, best first), ``best.yaml``
(``run_recbole_mml.py --config_files=best.yaml`` trains the best trial again) and ``best_test.json``
(the best trial's checkpoint evaluated on the test set, through quick_start)."""

import contextlib
import csv
import json
import math
import os
import sys

import torch
import yaml

from recbole_mml.checkpoint import find_checkpoint
from recbole_mml.errors import SearchInterrupted
from recbole_mml.quick_start import evaluate_checkpoint
from recbole_mml.tune.args import resume_command

EXPERIMENT_NAME = "ray"  # Ray's experiment folder inside --output
FINISHED_STATUSES = ("TERMINATED", "STOPPED", "ERROR")


def _plain(value):
    """A yaml/json-safe copy of a config value (tuples, numpy scalars, devices)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _error_line(trial):
    """The last line of a failed trial's error: the exception and its message."""
    error = trial.get_error()
    if error is None:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def trial_rows(analysis, setup):
    """One row per trial: id, status, epochs, best and last validation score, error, searched values."""
    metric = setup.metric
    rows = []
    for trial in analysis.trials:
        last = trial.last_result or {}
        status = trial.status
        if status == "TERMINATED" and last and not last.get("finished", True):
            status = "STOPPED"  # ended by the scheduler before its epochs were done
        row = {
            "trial_id": trial.trial_id,
            "status": status,
            "epochs": last.get("epoch", 0),
            metric: last.get(setup.rank_metric, ""),
            f"last_{metric}": last.get(metric, ""),
            "error": _error_line(trial) if status == "ERROR" else "",
        }
        for key, value in setup.space.decode(trial.config).items():
            row[key] = json.dumps(_plain(value)) if isinstance(value, (list, dict, tuple)) else value
        rows.append(row)
    return rows


def _scored(row, metric):
    return isinstance(row[metric], (int, float)) and math.isfinite(row[metric])


def _rank(metric, mode):
    """Best score first, ties by trial id; trials without a score (errors, not started) last."""
    sign = -1 if mode == "max" else 1
    return lambda row: (not _scored(row, metric), sign * row[metric] if _scored(row, metric) else 0, row["trial_id"])


def _best_row(rows, metric, mode):
    """The first row of trials.csv among the trials that ended without error (ties: the lower trial id)."""
    ended = [r for r in rows if r["status"] in ("TERMINATED", "STOPPED") and _scored(r, metric)]
    return min(ended, key=_rank(metric, mode)) if ended else None


def write_trials_csv(path, rows, metric, mode):
    """One row per trial, in :func:`_rank`'s order."""
    rows = sorted(rows, key=_rank(metric, mode))
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def best_yaml_text(output, setup, config, best, trial_config, n_trials):
    """The best trial as a config file: the user's settings, per-trial threads and the searched values."""
    values = {"model": setup.model, "dataset": setup.dataset}
    for key in config.external_config_dict:  # what the user's files and overrides set (RecBole's names read)
        if key in ("model", "dataset"):
            continue
        values[key] = setup.fixed["data_path"] if key == "data_path" else config[key]
    values.setdefault("torch_num_threads", setup.fixed["torch_num_threads"])
    values.update(setup.space.decode(trial_config))
    lines = [
        f"# Best of {n_trials} trials of a Ray Tune search ({setup.metric} = {best[setup.metric]}, "
        f"trial {best['trial_id']}).",
        f"# Train it again: python run_recbole_mml.py --model={setup.model} --dataset={setup.dataset} "
        f"--config_files={os.path.join(output, 'best.yaml')}",
    ]
    if best["status"] == "STOPPED":
        values["epochs"] = best["epochs"]
        lines.append("# The scheduler stopped this trial early: epochs is set to what it trained.")
    return "\n".join(lines) + "\n" + yaml.dump(_plain(values), Dumper=_BestDumper, sort_keys=False)


class _BestDumper(yaml.SafeDumper):
    """One key per line, lists inline (``margins: [0.8, 0.9]``), as in RecBole's own yaml files."""


_BestDumper.add_representer(
    list, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)
)


@contextlib.contextmanager
def _working_directory(path):
    """Run inside ``path`` (RecBole's Trainer writes ./log_tensorboard); Python 3.10 has no contextlib.chdir."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def evaluate_best(model_file, setup, config, split, output):
    """The test result of the best trial's model, on the split the trial was validated on, with the
    trial's thread count (on a busy machine more threads than cores make small ops crawl)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(setup.fixed["torch_num_threads"])
    try:
        with _working_directory(output):
            return evaluate_checkpoint(model_file, split, device=config["device"], checkpoint_dir=output)
    finally:
        torch.set_num_threads(threads)


def write_outputs(output, setup, config, split, mode, expected_trials):
    """trials.csv, then (if every trial ended) best.yaml and best_test.json; returns the exit code.

    Raises SearchInterrupted, after writing trials.csv, when some trial has not ended, or when fewer
    than ``expected_trials`` exist: a search stopped between trials leaves no unfinished trial behind.
    """
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(os.path.join(output, EXPERIMENT_NAME), default_metric=setup.rank_metric,
                                  default_mode=mode)
    rows = trial_rows(analysis, setup)
    trials_csv = os.path.join(output, "trials.csv")
    write_trials_csv(trials_csv, rows, setup.metric, mode)
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"{len(rows)} trials: {statuses}; {trials_csv}")
    if len(rows) < expected_trials or any(row["status"] not in FINISHED_STATUSES for row in rows):
        raise SearchInterrupted(f"search interrupted; continue it with: {resume_command(output)}")
    best = _best_row(rows, setup.metric, mode)
    if best is None:
        print("no trial finished without error; see the error column of trials.csv", file=sys.stderr)
        return 1
    trial = next(t for t in analysis.trials if t.trial_id == best["trial_id"])
    best_yaml = os.path.join(output, "best.yaml")
    with open(best_yaml, "w", encoding="utf-8") as f:
        f.write(best_yaml_text(output, setup, config, best, trial.config, len(rows)))
    checkpoint = analysis.get_last_checkpoint(trial)
    if checkpoint is None:
        print(f"best trial {best['trial_id']} left no checkpoint to test; {best_yaml} retrains it", file=sys.stderr)
        return 1
    test_result = evaluate_best(find_checkpoint(checkpoint.path), setup, config, split, output)
    summary = {
        "model": setup.model, "dataset": setup.dataset, "trial_id": best["trial_id"],
        "valid_metric": setup.metric, "best_valid_score": best[setup.metric], "epochs": best["epochs"],
        "params": _plain(setup.space.decode(trial.config)), "test_result": test_result,
        "checkpoint": checkpoint.path,
    }
    with open(os.path.join(output, "best_test.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    print(f"best trial {best['trial_id']}: {setup.metric} = {best[setup.metric]} with {summary['params']}")
    print(f"test: {summary['test_result']}")
    print(f"best config: {best_yaml}; test result: {os.path.join(output, 'best_test.json')}")
    return 0
