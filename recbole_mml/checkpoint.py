"""Checkpoint files of a run, in one module: read under torch >= 2.6, written atomically, names that
never collide, a record of a finished run, and resume checks that refuse an unusable checkpoint with
one line before any data is loaded.

A RecBole checkpoint is a pickled dict holding the Config object, so torch >= 2.6's default
``weights_only=True`` refuses it; only RecBole's own checkpoints are read through
:func:`load_checkpoint`, every other ``torch.load`` stays safe.

RecBole names a checkpoint ``<Model>-<date to the second>.pth`` and replaces whatever is there, so two
runs started in the same second shared one file: here a run's first save never replaces a file, it
takes the next free name (``<name>-2.pth``, ``-3``, ...). RecBole's resume of a finished run rewrote
its checkpoint with ``epoch=-1``, and the next resume trained every epoch again: here the end of a run
is recorded in its checkpoint, and resuming a finished run trains nothing and writes nothing. The
trainers of recbole_mml's runs use these functions (:class:`recbole_mml.trainer.RunCheckpoints`);
RecBole's own Trainer is left as it is.
"""

import contextlib
import glob
import itertools
import os
import tempfile
import uuid
from logging import getLogger

import torch

from recbole_mml.errors import ConfigError

RUN_RECORD = "recbole_mml_run"
# What RecBole's Trainer.resume_checkpoint reads.
REQUIRED_KEYS = ("config", "epoch", "cur_step", "best_valid_score", "state_dict", "optimizer")
# Data settings that decide which users and items exist, so the shapes of the embedding tables.
DATA_KEYS = (
    "benchmark_filename", "USER_ID_FIELD", "ITEM_ID_FIELD", "load_col", "unload_col", "user_inter_num_interval",
    "item_inter_num_interval", "val_interval", "filter_inter_by_user_or_item", "rm_dup_inter",
)
# Model keys that only change how evaluation is batched.
NOT_COMPARED = {"eval_batch_size"}


def load_checkpoint(path, device="cpu"):
    """A checkpoint written by RecBole's trainer (its Config object included)."""
    return torch.load(str(path), map_location=device, weights_only=False)


def _fsync(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name next to ``path``; what is written there replaces ``path`` in one rename.

    A kill during the write leaves the previous file whole and no temporary file behind. Nothing
    written (a process that saves nothing), or the file moved elsewhere, leaves ``path`` as it was.
    """
    path = os.path.abspath(str(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".tmp-{uuid.uuid4().hex}{os.path.splitext(path)[1]}")
    try:
        yield tmp
        if os.path.exists(tmp):
            _fsync(tmp)
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _torch_save(state, path):
    with open(path, "wb") as f:
        torch.save(state, f, pickle_protocol=4)


def save_checkpoint(state, path):
    """``torch.save`` through :func:`atomic_path`: replaces ``path`` whole."""
    with atomic_path(path) as tmp:
        _torch_save(state, tmp)


def claim_free_name(written, path):
    """Move the file ``written`` to ``path``, or to the first free ``<stem>-2<ext>``, ``-3``, ...; returns the name.

    Never replaces a file: a hard link fails when the name is taken, so two processes cannot claim one name.
    """
    _fsync(written)
    stem, ext = os.path.splitext(path)
    try:
        for n in itertools.count(1):
            candidate = path if n == 1 else f"{stem}-{n}{ext}"
            try:
                os.link(written, candidate)
                return candidate
            except FileExistsError:
                continue
            except OSError:  # a file system without hard links: claim the name, then move the file in
                try:
                    os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    continue
                os.replace(written, candidate)
                return candidate
    finally:
        if os.path.exists(written):
            os.remove(written)


def save_new_checkpoint(state, path):
    """Write ``state`` to ``path``, or to the first free name (:func:`claim_free_name`); it appears whole."""
    with atomic_path(path) as tmp:
        _torch_save(state, tmp)
        return claim_free_name(tmp, path)


def find_checkpoint(directory):
    """The one RecBole checkpoint (``*.pth``) in ``directory``."""
    files = sorted(glob.glob(os.path.join(directory, "*.pth")))
    if len(files) != 1:
        raise RuntimeError(f"expected one RecBole checkpoint (.pth) in {directory}, found {files}")
    return files[0]


def check_checkpoint_dir(directory):
    """Refuse a ``checkpoint_dir`` that cannot be created or written to: found before loading any data,
    not when the first epoch has trained and its checkpoint cannot be saved."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ConfigError(f"checkpoint_dir: '{directory}' is a file; expected a folder")
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=directory)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"checkpoint_dir: cannot write checkpoints to '{directory}' ({e.strerror or e})") from None


def _reason(error):
    """The informative line of an exception (torch's load_state_dict puts it second)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    line = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]
    return line.split(". ")[0].rstrip(".")  # torch's zip reader adds sentences of advice


def read_checkpoint(path, config=None, device="cpu"):
    """A RecBole training checkpoint, or ConfigError naming the file and what is wrong with it.

    With ``config``, a checkpoint of another model, dataset or model setting (``embedding_size``, the
    loss, the negatives: the keys of the model's yaml) or data setting is refused, naming the key.
    """
    path = str(path)
    if not os.path.exists(path):
        raise ConfigError(f"checkpoint '{path}' does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"checkpoint '{path}' is a folder; expected a .pth file")
    try:
        checkpoint = load_checkpoint(path, device)
    except OSError as e:
        raise ConfigError(f"checkpoint '{path}' cannot be read ({e.strerror or e})") from None
    except Exception as e:  # truncated, random bytes, another format: whatever torch.load and pickle raise
        raise ConfigError(
            f"checkpoint '{path}' is not a readable checkpoint (truncated, or not written by torch.save): {_reason(e)}"
        ) from None
    if not isinstance(checkpoint, dict) or not all(key in checkpoint for key in REQUIRED_KEYS):
        raise ConfigError(f"checkpoint '{path}' is not a RecBole training checkpoint (expected the keys {REQUIRED_KEYS})")
    if config is not None:
        check_same_setup(path, checkpoint["config"], config)
    return checkpoint


def check_same_setup(path, saved, config):
    """Refuse resuming ``saved`` (a checkpoint's config) with a ``config`` of another model, dataset or setting."""
    if str(saved["model"]).lower() != str(config["model"]).lower():
        raise ConfigError(f"checkpoint '{path}' is of model {saved['model']}; this run trains {config['model']}")
    if saved["dataset"] != config["dataset"]:
        raise ConfigError(f"checkpoint '{path}' is of dataset {saved['dataset']}; this run uses {config['dataset']}")
    keys = sorted(config.model_keys() - NOT_COMPARED) + list(DATA_KEYS)
    for key in keys:
        if key in saved and key in config and saved[key] != config[key]:
            raise ConfigError(
                f"checkpoint '{path}' was trained with {key}={saved[key]!r}; this run has {key}={config[key]!r} "
                f"(resume with the checkpoint's settings)"
            )


def resume_trainer(trainer, path):
    """RecBole's ``Trainer.resume_checkpoint``: continue from ``path`` and keep saving to it, with one-line
    refusals instead of tracebacks, and the run record (``trainer.resumed_run``) kept for :func:`resume_run`."""
    path = str(path)
    checkpoint = read_checkpoint(path, trainer.config, trainer.device)
    try:
        trainer.model.load_state_dict(checkpoint["state_dict"])
        trainer.model.load_other_parameter(checkpoint.get("other_parameter"))
        trainer.optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise ConfigError(f"checkpoint '{path}' does not fit this model: {_reason(e)}") from None
    trainer.saved_model_file, trainer.checkpoint_claimed = path, True
    trainer.start_epoch = checkpoint["epoch"] + 1
    trainer.cur_step = checkpoint["cur_step"]
    trainer.best_valid_score = checkpoint["best_valid_score"]
    trainer.resumed_run = checkpoint.get(RUN_RECORD)
    if not (trainer.resumed_run or {}).get("finished"):
        trainer.logger.info(f"Checkpoint loaded. Resume training from epoch {trainer.start_epoch}")


def resume_run(trainer, path):
    """Resume ``trainer`` from ``path``. Returns the run record of a finished run, whose results are to be
    reported with nothing trained; ``None`` when there is training to do.

    A finished run resumed with more ``epochs`` (and not stopped early) trains on into a new checkpoint
    file, so the finished run's file is never rewritten.
    """
    from recbole.utils import get_local_time

    trainer.resume_checkpoint(path)
    record = getattr(trainer, "resumed_run", None)
    if not record or not record.get("finished"):
        return None
    logger = getLogger()
    if trainer.epochs > record["epochs"] and not record["stopped_early"]:
        trainer.saved_model_file = os.path.join(trainer.checkpoint_dir, f"{trainer.config['model']}-{get_local_time()}.pth")
        trainer.checkpoint_claimed = False
        trainer.best_valid_result = record["best_valid_result"]
        trainer._save_checkpoint(trainer.start_epoch - 1, verbose=False)
        logger.info(
            f"checkpoint '{path}' is of a finished {record['epochs']}-epoch run: training on to {trainer.epochs} "
            f"epochs into '{trainer.saved_model_file}' (the finished run's file is kept)"
        )
        return None
    logger.info(
        f"checkpoint '{path}' is of a finished run ({record['epochs']} epochs"
        f"{', stopped early' if record['stopped_early'] else ''}): nothing to train; its results follow"
    )
    return record


def record_finished(trainer, best_valid_score, best_valid_result):
    """Mark the run's checkpoint finished, with its best validation result, once ``fit`` has trained.

    A fit that trained nothing (a resume past the last epoch) writes nothing.
    """
    if not getattr(trainer, "train_loss_dict", None):  # nothing trained (or not a RecBole Trainer)
        return
    path = trainer.saved_model_file
    primary = trainer.config["single_spec"] or trainer.config["local_rank"] == 0
    if not primary or not os.path.isfile(path):
        return
    state = load_checkpoint(path)
    state[RUN_RECORD] = {
        "finished": True,
        "epochs": trainer.epochs,
        "stopped_early": trainer.cur_step > trainer.stopping_step,
        "best_valid_score": best_valid_score,
        "best_valid_result": best_valid_result,
    }
    save_checkpoint(state, path)
