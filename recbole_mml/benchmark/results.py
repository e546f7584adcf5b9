"""results.csv: one row per finished run, appended as soon as it ends, so an interrupted benchmark
keeps what it finished and the next invocation skips it; beside it, each run's per-user test scores
(``per_user/<run>.csv.gz``, written before the row) for paired tests over users."""

import os

import pandas as pd

from recbole_mml import run_state

KEY_COLUMNS = ["run_id", "label", "model", "dataset", "seed", "sweep_key", "sweep_value"]
INFO_COLUMNS = ["best_valid_score", "epochs_run", "train_time_s", "mean_epoch_time_s", "wall_time_s"]


def read_results(csv_path):
    """The rows of results.csv; no rows (with the key columns) before the first run has finished."""
    if not os.path.isfile(csv_path):
        return pd.DataFrame(columns=KEY_COLUMNS + INFO_COLUMNS)
    return pd.read_csv(csv_path)


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


def run_file(run_id):
    """The file name (no extension) of a run's log and per-user scores: its id without | and =."""
    return run_id.replace("|", "__").replace("=", "-")


def state_dir(out_dir, run_id):
    """The folder of a run while it trains: its resumable state and best checkpoint, removed once it
    is tested (see :mod:`recbole_mml.run_state`)."""
    return os.path.join(out_dir, "checkpoints", run_file(run_id))


def per_user_path(out_dir, run_id):
    return os.path.join(out_dir, "per_user", run_file(run_id) + ".csv.gz")


def write_per_user(out_dir, run_id, scores):
    """A run's per-user test scores (columns ``user_id``, ``recall@20``, ...), written whole or not at
    all; gzip without a timestamp, so the same scores give the same bytes."""
    path = per_user_path(out_dir, run_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    pd.DataFrame(scores).to_csv(tmp, index=False, float_format="%.5g",
                                compression={"method": "gzip", "mtime": 0})
    os.replace(tmp, path)
    return path


def read_per_user(out_dir, run_id):
    """A run's per-user test scores (user ids as text), or None where the run kept none."""
    path = per_user_path(out_dir, run_id)
    return pd.read_csv(path, dtype={"user_id": str}) if os.path.isfile(path) else None


def sweep_text(values):
    """The swept values as text, '' where a run has none (NaN in results.csv, None in the plan)."""
    return values.map(lambda v: "" if v is None or pd.isna(v) else str(v)).astype(object)


def _setting(frame):
    """label|dataset|swept value of each row: the runs that differ only in their seed."""
    return frame["label"].astype(str) + "|" + frame["dataset"].astype(str) + "|" + sweep_text(frame["sweep_value"])


def pending_runs(runs, results, out_dir=None):
    """The planned ``runs`` without a row in ``results``, in plan order, each with an estimate of its
    wall minutes: the mean wall time of the finished runs that differ from it only in the seed
    (``est_runs`` of them; NaN where none has finished), and ``left_min``, what is left of it. With
    ``out_dir``, a run stopped with a saved state (it goes on from there) is ``under_way``, with
    ``saved_epoch`` and ``saved_min``: the epoch it resumes at and the minutes already spent."""
    results = results.reindex(columns=list(dict.fromkeys([*KEY_COLUMNS, *INFO_COLUMNS, *results.columns])))
    done = set(results["run_id"])
    pending = pd.DataFrame([{k: r[k] for k in KEY_COLUMNS} for r in runs if r["run_id"] not in done],
                           columns=KEY_COLUMNS)
    wall = results.groupby(_setting(results))["wall_time_s"]
    setting = _setting(pending)
    saved = [run_state.progress(state_dir(out_dir, run_id)) if out_dir else None for run_id in pending.run_id]
    saved_epoch = pd.Series([s["epoch"] if s else None for s in saved], index=pending.index, dtype=float)
    saved_min = pd.Series([s["wall_s"] / 60 if s and s["wall_s"] is not None else 0.0 for s in saved],
                          index=pending.index, dtype=float)
    estimate = setting.map(wall.mean() / 60).astype(float)
    return pending.assign(est_min=estimate, left_min=(estimate - saved_min).clip(lower=0),
                          est_runs=setting.map(wall.size()).fillna(0).astype(int),
                          under_way=[s is not None for s in saved], saved_epoch=saved_epoch, saved_min=saved_min)
