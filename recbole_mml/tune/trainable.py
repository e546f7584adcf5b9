"""One trial of a search: RecBole's training of the sampled config, reporting to Ray after every
evaluation (so ASHA can stop it early) and handing RecBole's best checkpoint to Ray whenever it
improves (so an interrupted search resumes where it stopped)."""

import logging
import tempfile

from recbole.utils import init_logger, init_seed

from recbole_mml import compat
from recbole_mml.checkpoint import find_checkpoint
from recbole_mml.quick_start import build_trainer, prepare_data


def log_to_file_only(config):
    """RecBole's log file for ``config``, without RecBole's console handler: every trial's worker
    prints to the driver's console, where Ray's progress table belongs."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    init_logger(config)
    for handler in list(root.handlers):
        if not isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)


def train_trial(params, setup, split):
    """Ray Tune's trainable: build the trial's config, data and trainer through quick_start, fit.

    The trainer is built as ``quick_start.run_recbole_mml`` builds it, so a rerun of ``best.yaml``
    draws the same random numbers and reproduces the trial's scores.
    """
    import ray
    from ray import tune

    compat.quiet_recbole_warnings()  # as the command line does
    values = setup.space.decode(params)
    # RecBole sets CUDA_VISIBLE_DEVICES from gpu_id: give it the GPUs Ray assigned to this trial
    gpu_id = ",".join(str(i) for i in ray.get_gpu_ids()) if setup.gpus_per_trial else ""
    with tempfile.TemporaryDirectory(prefix="recbole-checkpoint-") as checkpoint_dir:
        config = setup.config(values, checkpoint_dir=checkpoint_dir, gpu_id=gpu_id)
        log_to_file_only(config)
        logging.getLogger().info(config)
        init_seed(config["seed"], config["reproducibility"])
        dataset, train_data, valid_data, _ = prepare_data(config, split)
        trainer = build_trainer(config, dataset, train_data)
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            checkpoint.to_directory(checkpoint_dir)
            trainer.resume_checkpoint(find_checkpoint(checkpoint_dir))

        def report(epoch_idx, valid_score):
            improved = trainer.cur_step == 0  # RecBole has just saved this epoch as its best model
            finished = trainer.cur_step > trainer.stopping_step or epoch_idx + trainer.eval_step >= trainer.epochs
            metrics = {
                setup.metric: valid_score,
                setup.rank_metric: trainer.best_valid_score,
                "epoch": epoch_idx + 1,
                "finished": finished,
            }
            saved = tune.Checkpoint.from_directory(checkpoint_dir) if improved else None
            tune.report(metrics, checkpoint=saved)

        trainer.fit(train_data, valid_data, verbose=True, saved=True, show_progress=False, callback_fn=report)
