"""Config checks RecBole does not make: unknown keys, non-numeric numbers, model-specific values.

RecBole silently ignores a misspelt key (``--margin=0.8`` for a model whose key is ``margins``
trains with the default) and accepts ``--epochs=ten`` until it crashes deep in training. These
checks run on the finished Config, before any data is loaded, so a bad run ends in a second.
"""

import difflib
import glob
import os
from functools import lru_cache
from logging import getLogger

import yaml

from recbole.utils import argument_list

from recbole_mml.config import PROPERTIES_DIR, model_yaml_files
from recbole_mml.errors import ConfigError

RECBOLE_PROPERTIES = os.path.join(os.path.dirname(argument_list.__file__), "..", "properties")

# Keys RecBole or recbole_mml set or read at run time that no yaml file declares.
RUNTIME_KEYS = {
    "model", "dataset", "config_files", "local_rank", "world_size", "ip", "port", "nproc", "offset",
    "single_spec", "device", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "neg_sampling",
    "valid_neg_sample_args", "test_neg_sample_args", "loss_type", "train_neg_sample_args",
    "benchmark_filename", "additional_feat_suffix", "kg_reverse_r", "entity_kg_num_interval",
    "relation_kg_num_interval", "numerical_features", "preload_weight", "normalize_field",
    "normalize_all", "discretization", "alias_of_user_id", "alias_of_item_id", "alias_of_entity_id",
    "alias_of_relation_id", "rm_dup_inter", "val_interval", "filter_inter_by_user_or_item",
    "user_inter_num_interval", "item_inter_num_interval", "unused_col", "threshold", "seq_len",
}


def _yaml_keys(pattern):
    keys = set()
    for path in glob.glob(pattern):
        with open(path, encoding="utf-8") as f:
            keys.update((yaml.safe_load(f) or {}).keys())
    return keys


@lru_cache(maxsize=None)
def _general_keys():
    keys = set(RUNTIME_KEYS)
    for name in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        keys.update(getattr(argument_list, name))
    keys |= _yaml_keys(os.path.join(RECBOLE_PROPERTIES, "overall.yaml"))
    keys |= _yaml_keys(os.path.join(RECBOLE_PROPERTIES, "dataset", "*.yaml"))
    keys |= _yaml_keys(os.path.join(RECBOLE_PROPERTIES, "quick_start_config", "*.yaml"))
    keys |= _yaml_keys(os.path.join(PROPERTIES_DIR, "overall.yaml"))
    keys |= _yaml_keys(os.path.join(PROPERTIES_DIR, "dataset", "*.yaml"))
    return frozenset(keys)


def known_keys(model, model_class):
    """Every key a run of ``model`` understands: general, dataset and this model's own."""
    keys = _general_keys() | _yaml_keys(os.path.join(RECBOLE_PROPERTIES, "model", f"{model}.yaml"))
    for path in model_yaml_files(model_class):
        keys |= _yaml_keys(path)
    return keys


def check_keys(keys, model, model_class, strict=True, where=None):
    """Refuse (or, with ``strict`` False, warn about) keys nothing will read, naming the closest
    known key; ``where(key)`` says where a key was given (a search-space file and line)."""
    known = known_keys(model, model_class)
    for key in keys:
        if key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        message = f"unknown config key '{key}' for model {model}{hint}"
        if where is not None:
            message = f"{where(key)}: {message}"
        if strict is False:
            getLogger().warning(message)
        else:
            raise ConfigError(message + " (set strict_config_keys=False to only warn)")


def check_unknown_keys(config):
    """The keys the user gave (files, dict, overrides), against what ``config``'s model reads."""
    check_keys(config.external_config_dict, config["model"], config.model_class, config["strict_config_keys"])


def check_numeric_values(config):
    """A key whose default is a number must be given a number (``--epochs=ten`` is refused)."""
    for key, value in config.external_config_dict.items():
        default = config.internal_config_dict.get(key)
        if isinstance(default, bool) or not isinstance(default, (int, float)) or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")


def validate_config(config):
    """All checks, then the model's own ``check_config`` if it has one."""
    check_unknown_keys(config)
    check_numeric_values(config)
    check = getattr(config.model_class, "check_config", None)
    if check is not None:
        check(config)
