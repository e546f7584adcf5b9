"""results.csv: one row per finished run, appended as soon as it ends, so an interrupted benchmark
keeps what it finished and the next invocation skips it."""

import os

import pandas as pd

KEY_COLUMNS = ["run_id", "label", "model", "dataset", "seed", "sweep_key", "sweep_value"]
INFO_COLUMNS = ["best_valid_score", "epochs_run", "train_time_s", "mean_epoch_time_s", "wall_time_s"]


def finished_run_ids(csv_path):
    if not os.path.isfile(csv_path):
        return set()
    return set(pd.read_csv(csv_path, usecols=["run_id"])["run_id"])


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
