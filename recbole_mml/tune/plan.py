"""What every trial of a search shares, checked before Ray starts: the space, the fixed settings,
the metric trials are ranked by, and whether the driver's split can be shared."""

import contextlib
import os
from dataclasses import dataclass

from recbole.utils import ModelType
from recbole.utils.argument_list import dataset_arguments

from recbole_mml.config import parse_overrides
from recbole_mml.errors import ConfigError
from recbole_mml.quick_start import build_config
from recbole_mml.tune.space import SearchSpace, load_search_space
from recbole_mml.validation import check_keys

# Keys that change how the dataset is loaded, split or sampled: searching one of them means the
# driver's split cannot be shared, and every trial prepares its own data.
SPLIT_KEYS = {
    "data_path", "seed", "repeatable", "eval_args", "train_neg_sample_args", "valid_neg_sample_args",
    "test_neg_sample_args", "save_dataset", "dataset_save_path", "save_dataloaders", "dataloaders_save_path",
} | set(dataset_arguments)


@dataclass
class TrialSetup:
    """Everything a trial needs besides its sampled values; sent to the workers, so no driver state
    (paths are absolute: Ray runs each trial in its own folder, possibly on another machine)."""

    model: str
    dataset: str
    config_files: list
    overrides: list
    fixed: dict
    space: SearchSpace
    metric: str
    gpus_per_trial: float

    @property
    def rank_metric(self):
        """What ASHA, Optuna and the final pick rank trials by: the best validation score so far,
        i.e. the score of the model RecBole keeps (a trial that peaked early is not judged by a later dip)."""
        return f"best_{self.metric}"

    def config(self, values, **extra):
        config_dict = {**self.fixed, **values, **extra}
        return build_config(self.model, self.dataset, self.config_files or None, config_dict, self.overrides)


@contextlib.contextmanager
def visible_devices_kept():
    """RecBole's Config sets CUDA_VISIBLE_DEVICES from gpu_id; keep the driver's (Ray reads it)."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def _check_space_keys(space, config):
    for key in space.keys:
        if key in ("model", "dataset"):
            raise ConfigError(f"{space.where(key)}: a search tunes one model on one dataset; set --{key} instead")
    check_keys(space.keys, config["model"], config.model_class, config["strict_config_keys"], where=space.where)


def plan_search(args):
    """``(setup, driver config, shared split?)``; ConfigError for anything wrong, before Ray starts."""
    space = load_search_space(args.params_file)
    overridden = parse_overrides(args.overrides)
    for key in space.keys:
        if key in overridden:
            raise ConfigError(f"{space.where(key)}: '{key}' is searched and also fixed by --{key}={overridden[key]}")
    with visible_devices_kept():
        config = build_config(args.model, args.dataset, args.config_files or None, None, args.overrides)
        _check_space_keys(space, config)
        build_config(args.model, args.dataset, args.config_files or None, space.first(), args.overrides)
    if not config["eval_step"] or config["eval_step"] < 1:
        raise ConfigError(
            f"eval_step: a search ranks trials by validation results; expected >= 1, got {config['eval_step']}"
        )
    fixed = {
        "data_path": os.path.dirname(os.path.abspath(config["data_path"])),
        "torch_num_threads": max(1, int(args.cpus_per_trial)),
        "show_progress": False,
    }
    setup = TrialSetup(
        model=config["model"], dataset=config["dataset"], config_files=args.config_files, overrides=args.overrides,
        fixed=fixed, space=space, metric=f"valid_{config['valid_metric'].lower()}", gpus_per_trial=args.gpus_per_trial,
    )
    shared = config["MODEL_TYPE"] != ModelType.KNOWLEDGE and not SPLIT_KEYS & set(space.keys)
    return setup, config, shared
