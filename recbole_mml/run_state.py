"""A killed run that goes on from where it stopped, with the result the uninterrupted run would give.

RecBole saves a checkpoint only at a better validation score, without the random streams, so a run
resumed from it trains again every epoch since that score and draws other shuffles, negatives and
dropout masks. :func:`resumable` saves the whole state of a run at the start of an epoch (at most
every ``every_s`` seconds): model, optimizer, early-stopping counters, best validation result and
its checkpoint's name, the random streams (python, NumPy, torch and the train loader's generator),
and the epoch times and wall seconds so far. A run started again on the same folder with the same
settings loads it and trains on from that epoch. The benchmark keeps one folder per run, so a run
stopped by anything (a job's time limit, a preempted machine, a kill) loses at most ``every_s``
seconds and an epoch.
"""

import contextlib
import json
import os
import random
import shutil
import time
from logging import getLogger

import numpy as np
import torch

from recbole_mml.checkpoint import load_checkpoint, save_checkpoint

STATE_FILE = "run_state.pth"
PROGRESS_FILE = "progress.json"  # the saved epoch and wall seconds, readable without loading the state
SAVE_EVERY_S = 60.0  # a save costs about the model and optimizer written once: small against a minute


def _streams(train_data):
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "loader": train_data.generator.get_state(),
    }


def _restore_streams(train_data, streams):
    random.setstate(streams["python"])
    np.random.set_state(streams["numpy"])
    torch.set_rng_state(streams["torch"])
    train_data.generator.set_state(streams["loader"])


def _load(path, setup):
    """The state in ``path`` if it is of this ``setup``; None (and a logged line) when it is missing,
    unreadable or of other settings, so the run starts over."""
    if not os.path.isfile(path):
        return None
    try:
        state = load_checkpoint(path)
    except Exception as e:  # a file cut short by a full disk: start over rather than fail the run
        getLogger().warning(f"run state '{path}' cannot be read ({type(e).__name__}); training from the start")
        return None
    if state.get("setup") != setup:
        getLogger().warning(f"run state '{path}' is of other settings; training from the start")
        return None
    best = state["best_model_file"]
    if best is not None and not os.path.isfile(best):
        getLogger().warning(f"run state '{path}' names a missing best checkpoint '{best}'; training from the start")
        return None
    return state


def resumable(trainer, train_data, folder, setup, durations=None, extra=None, every_s=None):
    """Make ``trainer``'s fit resumable through ``folder`` (also its ``checkpoint_dir``); returns the
    wall seconds of the earlier attempts (0.0 for a fresh run).

    ``setup`` is a picklable description of the run (its model, dataset and config): a state saved
    under other settings is not resumed. ``durations`` is the list that receives the epoch times
    (:func:`recbole_mml.benchmark.execute.time_epochs`, installed before this): the earlier attempts'
    times are put in front, so the run's epoch count and train time are whole. ``extra`` is a pair
    ``(get, put)`` for what else the caller's run keeps (a learning curve): ``get()`` is saved with
    the state, ``put(saved)`` receives it back on a resume.
    """
    durations = [] if durations is None else durations
    every_s = SAVE_EVERY_S if every_s is None else every_s
    path = os.path.join(folder, STATE_FILE)
    state = _load(path, setup)
    earlier_s = 0.0
    if state is not None:
        trainer.model.load_state_dict(state["state_dict"])
        trainer.model.load_other_parameter(state["other_parameter"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.start_epoch = state["epoch"]
        trainer.cur_step = state["cur_step"]
        trainer.best_valid_score = state["best_valid_score"]
        trainer.best_valid_result = state["best_valid_result"]
        if state["best_model_file"] is not None:
            trainer.saved_model_file, trainer.checkpoint_claimed = state["best_model_file"], True
        durations[:0] = state["durations"]
        earlier_s = state["wall_s"]
        if extra is not None:
            extra[1](state["extra"])
        _restore_streams(train_data, state["streams"])
        getLogger().info(f"run state '{path}' loaded: training on from epoch {state['epoch']}")
    start, last_save = time.perf_counter(), time.perf_counter()
    train_epoch = trainer._train_epoch

    def save_then_train(data, epoch_idx, *args, **kwargs):
        nonlocal last_save
        if epoch_idx > trainer.start_epoch and time.perf_counter() - last_save >= every_s:
            claimed = getattr(trainer, "checkpoint_claimed", False) and os.path.isfile(trainer.saved_model_file)
            save_checkpoint({
                "setup": setup,
                "epoch": epoch_idx,
                "state_dict": trainer.model.state_dict(),
                "other_parameter": trainer.model.other_parameter(),
                "optimizer": trainer.optimizer.state_dict(),
                "cur_step": trainer.cur_step,
                "best_valid_score": trainer.best_valid_score,
                "best_valid_result": trainer.best_valid_result,
                "best_model_file": trainer.saved_model_file if claimed else None,
                "durations": list(durations),
                "wall_s": earlier_s + time.perf_counter() - start,
                "streams": _streams(data),
                "extra": extra[0]() if extra is not None else None,
            }, path)
            _write_progress(folder, epoch_idx, earlier_s + time.perf_counter() - start)
            last_save = time.perf_counter()
        return train_epoch(data, epoch_idx, *args, **kwargs)

    trainer._train_epoch = save_then_train
    return earlier_s


def _write_progress(folder, epoch, wall_s):
    tmp = os.path.join(folder, PROGRESS_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"epoch": epoch, "wall_s": round(wall_s, 3)}, f)
    os.replace(tmp, os.path.join(folder, PROGRESS_FILE))


def progress(folder):
    """``{"epoch", "wall_s"}`` of the state saved in ``folder`` (the epoch a run started again goes on
    from, and the wall seconds spent before it; both None for a state saved without them), or None
    where no state is saved. Plans read it to list a killed run as under way, with what is left of
    its estimate."""
    if not has_state(folder):
        return None
    try:
        with open(os.path.join(folder, PROGRESS_FILE), encoding="utf-8") as f:
            saved = json.load(f)
        return {"epoch": int(saved["epoch"]), "wall_s": float(saved["wall_s"])}
    except (OSError, ValueError, KeyError, TypeError):  # a state saved before the progress file existed
        return {"epoch": None, "wall_s": None}


def has_state(folder):
    """Whether ``folder`` holds a saved state (a killed attempt of its run)."""
    return os.path.isfile(os.path.join(folder, STATE_FILE))


def finished(folder):
    """Remove a finished run's folder (its state and best checkpoint): its row holds what is kept. The
    folder above goes too once no other run's folder is left in it."""
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(os.path.abspath(folder)))
