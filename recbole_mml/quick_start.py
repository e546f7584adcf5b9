"""Train-and-test entry points, RecBole's quick_start with recbole_mml's Config and registry.

The one place that builds config, data, model and trainer: a run, a search trial, a benchmark run
and the test of a search's best checkpoint all go through these functions, so they load, split,
seed and report alike.
"""

import sys
import warnings
from dataclasses import dataclass
from logging import getLogger

import torch

from recbole.data import create_dataset, data_preparation
from recbole.data.transform import construct_transform
from recbole.data.utils import create_samplers, get_dataloader
from recbole.utils import get_environment, get_flops, init_logger, init_seed, set_color

from recbole_mml import compat, fast_paths
from recbole_mml.checkpoint import check_checkpoint_dir, read_checkpoint, record_finished, resume_run
from recbole_mml.config import Config
from recbole_mml.data_checks import check_dataset_files, check_no_cold_users
from recbole_mml.memory import retain_freed_memory
from recbole_mml.registry import get_model, get_trainer
from recbole_mml.validation import validate_config

compat.apply()


def build_config(model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None):
    """The Config for a run, with recbole_mml's checks applied before anything is loaded."""
    config = Config(model, dataset, config_file_list, config_dict, cmd_args)
    validate_config(config)
    threads = config["torch_num_threads"]
    if threads:
        torch.set_num_threads(int(threads))
    if config["retain_freed_memory"] and not retain_freed_memory():
        warnings.warn("retain_freed_memory: the C library is not glibc; its allocator is left as it is", stacklevel=2)
    return config


@dataclass
class DatasetSplit:
    """A dataset split once into train/valid/test parts and their samplers, for several runs that
    build their own loaders (a search's trials, each with its own batch size)."""

    datasets: tuple
    samplers: tuple


def split_dataset(config):
    """Load and split the dataset of ``config`` (RecBole's data_preparation up to the loaders)."""
    check_dataset_files(config)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    built = dataset.build()
    return DatasetSplit(tuple(built), tuple(create_samplers(config, dataset, built)))


def prepare_data(config, split=None):
    """Dataset and its train/valid/test loaders, refusing missing files instead of downloading.

    Seeds first: RecBole's random split depends on the global RNG, so the same seed gives the same
    split. With ``split`` (:func:`split_dataset`), the loaders are built over that split instead,
    with this config's batch sizes and sampling; the dataset returned is then the train part.
    """
    if split is None:
        check_dataset_files(config)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
    else:
        (train, valid, test), (train_sampler, valid_sampler, test_sampler) = split.datasets, split.samplers
        train_data = get_dataloader(config, "train")(config, train, train_sampler, shuffle=config["shuffle"])
        valid_data = get_dataloader(config, "valid")(config, valid, valid_sampler, shuffle=False)
        test_data = get_dataloader(config, "test")(config, test, test_sampler, shuffle=False)
        dataset = train
    loader_class = getattr(config.model_class, "train_loader_class", None)
    if loader_class is not None and not isinstance(train_data, loader_class):
        train_data = loader_class(config, train_data._dataset, train_data._sampler, shuffle=train_data.shuffle)
    check_no_cold_users(config, train_data, valid_data, test_data)
    return dataset, train_data, valid_data, test_data


def build_model(config, train_dataset):
    """The model of ``config["model"]`` on ``train_dataset``, on its device, with the fast paths its
    config turns on (:mod:`recbole_mml.fast_paths`)."""
    return fast_paths.apply(get_model(config["model"])(config, train_dataset).to(config["device"]), config)


def build_trainer(config, dataset, train_data):
    """Seed, model, FLOPs, trainer: the steps of every run, in RecBole's order.

    Counting FLOPs runs the model's ``predict`` (dropout draws random numbers), so every caller
    goes through here to keep one random stream: a search trial and its rerun draw the same numbers.
    """
    logger = getLogger()
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = build_model(config, train_data._dataset)
    logger.info(model)
    flops = get_flops(model, dataset, config["device"], logger, construct_transform(config))
    logger.info(set_color("FLOPs", "blue") + f": {flops}")
    return get_trainer(config["MODEL_TYPE"], config["model"])(config, model)


def plain_numbers(result):
    """RecBole's metric dict (numpy floats) as ``{name: float}``, which prints as plain numbers."""
    return None if result is None else {name: float(value) for name, value in result.items()}


def fit_and_test(config, trainer, train_data, valid_data, test_data, saved=True, resume=None, verbose=True):
    """Fit (optionally resuming a checkpoint) and test; RecBole's result dict, with plain numbers."""
    logger = getLogger()
    finished = resume_run(trainer, resume) if resume else None
    if finished is None:
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, verbose=verbose, saved=saved, show_progress=config["show_progress"]
        )
        if saved:
            record_finished(trainer, best_valid_score, best_valid_result)
    else:  # a finished run: its results, nothing trained
        best_valid_score, best_valid_result = finished["best_valid_score"], finished["best_valid_result"]
    test_result = plain_numbers(
        trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    )
    best_valid_result = plain_numbers(best_valid_result)
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "best_valid_score": float(best_valid_score),
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "saved_model_file": trainer.saved_model_file if saved else None,
    }


def train_and_test(config, dataset, train_data, valid_data, test_data, saved=True, resume=None, verbose=True):
    """Build the model and trainer, fit, test: :func:`build_trainer` then :func:`fit_and_test`."""
    trainer = build_trainer(config, dataset, train_data)
    return fit_and_test(config, trainer, train_data, valid_data, test_data, saved=saved, resume=resume,
                        verbose=verbose)


def run_recbole_mml(
    model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None,
    saved=True, resume=None, queue=None,
):
    """Train and test one model on one dataset in this process (RecBole's run_recbole).

    The checkpoint folder and a checkpoint to resume are checked before any data is loaded, and the
    config is logged once the data is ready, so a refused run prints its error, not the config.
    """
    config = build_config(model, dataset, config_file_list, config_dict, cmd_args)
    if saved:
        check_checkpoint_dir(config["checkpoint_dir"])
    if resume:
        read_checkpoint(resume, config)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    dataset, train_data, valid_data, test_data = prepare_data(config)
    logger.info(sys.argv)
    logger.info(config)
    logger.info(dataset)
    result = train_and_test(config, dataset, train_data, valid_data, test_data, saved=saved, resume=resume)
    logger.info("The running environment of this training is as follows:\n" + get_environment(config).draw())
    if not config["single_spec"]:
        torch.distributed.destroy_process_group()
    if config["local_rank"] == 0 and queue is not None:
        queue.put(result)
    return result


def _run_rank(rank, model, dataset, config_file_list, kwargs):
    kwargs["config_dict"] = dict(kwargs.get("config_dict") or {}, local_rank=rank)
    run_recbole_mml(model, dataset, config_file_list, **kwargs)


def run(
    model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None, saved=True,
    resume=None, nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0,
):
    """Like ``recbole.quick_start.run``: one process, or ``nproc`` processes with torch.distributed."""
    if nproc == 1 and world_size <= 0:
        return run_recbole_mml(model, dataset, config_file_list, config_dict, cmd_args, saved, resume)
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    config_dict = dict(config_dict or {})
    config_dict.update(
        world_size=nproc if world_size == -1 else world_size, ip=ip, port=port, nproc=nproc, offset=group_offset
    )
    kwargs = {"config_dict": config_dict, "cmd_args": cmd_args, "saved": saved, "resume": resume, "queue": queue}
    mp.spawn(_run_rank, args=(model, dataset, config_file_list, kwargs), nprocs=nproc, join=True)
    return None if queue.empty() else queue.get()


def objective_function(config_dict=None, config_file_list=None, saved=True):
    """RecBole's hyper-tuning objective for any model recbole_mml knows, reporting to Ray Tune's current (dict) API."""
    config = build_config(config_dict=config_dict, config_file_list=config_file_list)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset, train_data, valid_data, test_data = prepare_data(config)
    result = train_and_test(config, dataset, train_data, valid_data, test_data, saved=saved, verbose=False)
    result["model"] = config["model"]
    try:
        from ray import tune

        if tune.get_context().get_trial_id() is not None:
            tune.report(dict(result["test_result"]))
    except (ImportError, RuntimeError, AttributeError):
        pass
    return result


def _read_checkpoint(model_file, **config_values):
    checkpoint = read_checkpoint(model_file, device=config_values.get("device", "cpu"))
    for key, value in config_values.items():
        checkpoint["config"][key] = value
    return checkpoint


def _data_and_model(checkpoint, split=None):
    config = checkpoint["config"]
    dataset, train_data, valid_data, test_data = prepare_data(config, split)
    init_seed(config["seed"], config["reproducibility"])
    model = build_model(config, train_data._dataset)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data


def load_data_and_model(model_file, split=None):
    """Config, dataset, loaders and trained model of a checkpoint (RecBole's, for any model recbole_mml knows).

    ``split``: build the loaders over a :class:`DatasetSplit` instead of loading and splitting again.
    """
    checkpoint = _read_checkpoint(model_file)
    init_seed(checkpoint["config"]["seed"], checkpoint["config"]["reproducibility"])
    init_logger(checkpoint["config"])
    return _data_and_model(checkpoint, split)


def evaluate_checkpoint(model_file, split=None, **config_values):
    """The test result of a saved model, with plain numbers; ``config_values`` replace the saved
    config's (``device``, ``checkpoint_dir``). Logging is left as the caller set it up.

    RecBole's Trainer writes TensorBoard files under ``./log_tensorboard``: call it from the folder
    that should hold them.
    """
    checkpoint = _read_checkpoint(model_file, **config_values)
    config, model, _, _, _, test_data = _data_and_model(checkpoint, split)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    return plain_numbers(trainer.evaluate(test_data, load_best_model=False, show_progress=False))
