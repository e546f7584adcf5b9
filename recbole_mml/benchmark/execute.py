"""One benchmark run: trained and tested through quick_start, in this process or in a fresh one.

A run in a subprocess (the default) frees its memory (EASE's dense item matrix) before the next;
the two processes talk through two json files: the run (model, dataset, config) and its row.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def time_epochs(trainer):
    """A list that receives the duration of each training epoch of ``trainer``.

    RecBole's ``fit`` returns only the best scores; every trainer (ours call ``super()``) goes
    through ``_train_epoch``, wrapped here on this one trainer object.
    """
    durations = []
    train_epoch = trainer._train_epoch

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return train_epoch(*args, **kwargs)
        finally:
            durations.append(time.perf_counter() - start)

    trainer._train_epoch = timed
    return durations


def execute(model, dataset, config_dict):
    """Train and test one model in this process through recbole_mml.quick_start; a flat result dict."""
    from recbole.utils import init_logger, init_seed

    from recbole_mml.quick_start import build_config, build_trainer, fit_and_test, prepare_data

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recbole_mml_ckpt_") as checkpoints:
        config = build_config(model, dataset, config_dict=dict(config_dict, checkpoint_dir=checkpoints))
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        dataset, train_data, valid_data, test_data = prepare_data(config)
        trainer = build_trainer(config, dataset, train_data)
        durations = time_epochs(trainer)
        result = fit_and_test(config, trainer, train_data, valid_data, test_data, saved=True, verbose=True)
    row = {f"test_{k}": v for k, v in result["test_result"].items()}
    row.update(
        best_valid_score=result["best_valid_score"],
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
    """The subprocess's side: read the run, execute it, write its row."""
    from recbole_mml.compat import quiet_recbole_warnings

    quiet_recbole_warnings()  # as the command line that started this process does
    with open(request, encoding="utf-8") as f:
        job = json.load(f)
    row = execute(job["model"], job["dataset"], job["config"])
    with open(answer, "w", encoding="utf-8") as f:
        json.dump(row, f)
    return 0
