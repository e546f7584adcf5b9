"""One benchmark run: trained and tested through quick_start, in this process or in a fresh one.

A run in a subprocess (the default) frees its memory (EASE's dense item matrix) before the next;
the two processes talk through two json files: the run (model, dataset, config) and its row. The row
can carry the run's per-user test scores (``per_user``), for paired tests over users.
"""

import contextlib
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


def last_evaluation(trainer):
    """A dict whose ``struct`` is the data struct of ``trainer``'s latest evaluation.

    RecBole's collector hands each evaluation's resources to the evaluator and keeps none, and its
    evaluator reports means only; the test evaluation's struct gives the per-user scores.
    """
    kept = {}
    collect = trainer.eval_collector.get_data_struct

    def keep():
        kept["struct"] = collect()
        return kept["struct"]

    trainer.eval_collector.get_data_struct = keep
    return kept


def per_user_scores(struct, config, dataset, test_data):
    """Per-user Recall and NDCG at the config's k values, as json-ready lists keyed by column (the
    user tokens under ``user_id``); None where the evaluation collected no top-k hits."""
    from recbole_mml.collector import eval_user_tokens, per_user_topk

    if struct is None or "rec.topk" not in struct:
        return None
    values = per_user_topk(struct, config)
    return {"user_id": [str(u) for u in eval_user_tokens(dataset, test_data)],
            **{name: np.asarray(v, dtype=float).tolist() for name, v in values.items()}}


def execute(model, dataset, config_dict, per_user=False, state_dir=None, every_s=None):
    """Train and test one model in this process through recbole_mml.quick_start; a flat result dict,
    with the per-user test scores under ``per_user`` when asked (see :func:`per_user_scores`).

    With ``state_dir`` the run is resumable (:mod:`recbole_mml.run_state`): a run killed before its
    row came back goes on from its last saved epoch when executed again with the same folder, which
    is removed once the run is tested; ``every_s`` is how often it saves (default
    :data:`recbole_mml.run_state.SAVE_EVERY_S`). ``earlier_wall_s`` in the row is the wall time of
    the killed attempts, included in ``wall_time_s``.
    """
    from recbole.utils import init_logger, init_seed

    from recbole_mml import run_state
    from recbole_mml.quick_start import build_config, build_trainer, fit_and_test, prepare_data

    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        checkpoints = state_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="recbole_mml_ckpt_"))
        config = build_config(model, dataset, config_dict=dict(config_dict, checkpoint_dir=checkpoints))
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        dataset_name = dataset
        dataset, train_data, valid_data, test_data = prepare_data(config)
        trainer = build_trainer(config, dataset, train_data)
        durations = time_epochs(trainer)
        evaluation = last_evaluation(trainer)
        earlier_s = 0.0
        if state_dir:
            setup = {"model": model, "dataset": dataset_name, "config": json.dumps(config_dict, sort_keys=True)}
            earlier_s = run_state.resumable(trainer, train_data, state_dir, setup, durations, every_s=every_s)
        result = fit_and_test(config, trainer, train_data, valid_data, test_data, saved=True, verbose=True)
    row = {f"test_{k}": v for k, v in result["test_result"].items()}
    row.update(
        best_valid_score=result["best_valid_score"],
        epochs_run=len(durations),
        train_time_s=float(sum(durations)),
        mean_epoch_time_s=float(np.mean(durations)) if durations else math.nan,
        wall_time_s=earlier_s + time.perf_counter() - start,
        earlier_wall_s=earlier_s,
    )
    if per_user:
        row["per_user"] = per_user_scores(evaluation.get("struct"), config, dataset, test_data)
    if state_dir:
        run_state.finished(state_dir)
    return row


def run_subprocess(run, log_path, timeout=None, per_user=False, state_dir=None, every_s=None):
    """One run in a fresh interpreter (memory freed after it); its console log goes to ``log_path``
    (appended to: a resumed run's log keeps the killed attempt's)."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="recbole_mml_run_") as tmp:
        request = os.path.join(tmp, "run.json")
        answer = os.path.join(tmp, "result.json")
        with open(request, "w", encoding="utf-8") as f:
            json.dump({"model": run["model"], "dataset": run["dataset"], "config": run["config"], "per_user": per_user,
                       "state_dir": state_dir, "every_s": every_s}, f)
        start = time.perf_counter()
        from recbole_mml.run_state import has_state

        with open(log_path, "a" if state_dir and has_state(state_dir) else "w", encoding="utf-8") as log:
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
        row["wall_time_s"] = row.pop("earlier_wall_s", 0.0) + time.perf_counter() - start
        return row, None


def worker_main(request, answer):
    """The subprocess's side: read the run, execute it, write its row."""
    from recbole_mml.compat import quiet_recbole_warnings

    quiet_recbole_warnings()  # as the command line that started this process does
    with open(request, encoding="utf-8") as f:
        job = json.load(f)
    row = execute(job["model"], job["dataset"], job["config"], per_user=job.get("per_user", False),
                  state_dir=job.get("state_dir"), every_s=job.get("every_s"))
    with open(answer, "w", encoding="utf-8") as f:
        json.dump(row, f)
    return 0
