"""Config checks RecBole does not make: unknown keys, non-numeric numbers, non-boolean switches, ranges,
lists, model-specific values.

RecBole silently ignores a misspelt key (``--margin=0.8`` for a model whose key is ``margins``
trains with the default), accepts ``--epochs=ten`` until it crashes deep in training and reports
the test metrics of an untrained model for ``--epochs=0``. These checks run on the finished
Config, before any data is loaded, so a bad run ends in a second.
"""

import difflib
import math
import os
from functools import lru_cache
from logging import getLogger

from recbole.utils import argument_list

from recbole_mml.config import PROPERTIES_DIR, RECBOLE_PROPERTIES, model_keys, yaml_keys
from recbole_mml.errors import ConfigError

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


@lru_cache(maxsize=None)
def _general_keys():
    keys = set(RUNTIME_KEYS)
    for name in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        keys.update(getattr(argument_list, name))
    keys |= yaml_keys(os.path.join(RECBOLE_PROPERTIES, "overall.yaml"))
    keys |= yaml_keys(os.path.join(RECBOLE_PROPERTIES, "dataset", "*.yaml"))
    keys |= yaml_keys(os.path.join(RECBOLE_PROPERTIES, "quick_start_config", "*.yaml"))
    keys |= yaml_keys(os.path.join(PROPERTIES_DIR, "overall.yaml"))
    keys |= yaml_keys(os.path.join(PROPERTIES_DIR, "dataset", "*.yaml"))
    return frozenset(keys)


def known_keys(model, model_class):
    """Every key a run of ``model`` understands: general, dataset and this model's own."""
    return _general_keys() | model_keys(model, model_class)


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


def check_bool_values(config):
    """A key whose default is True or False must be given True or False (``fused_optimizer: 'no'`` would
    count as True)."""
    for key, value in config.external_config_dict.items():
        default = config.internal_config_dict.get(key)
        if isinstance(default, bool) and value is not None and not isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected True or False, got {value!r}")


# Keys RecBole needs as integers >= 1: epochs=0 or -3 used to report the test metrics of an untrained model.
POSITIVE_INTEGER_KEYS = ("epochs", "train_batch_size", "eval_batch_size")
# List keys for which RecBole itself wraps a single value into a list.
SCALAR_LIST_KEYS = {"topk", "metrics"}
# List keys whose RecBole default is None, so their type cannot be read from the defaults.
LIST_KEYS = {"benchmark_filename"}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_ranges(config):
    """Training sizes are integers >= 1, ``learning_rate`` is finite and > 0, ``weight_decay`` finite and >= 0."""
    for key in POSITIVE_INTEGER_KEYS:
        value = config[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{key}: expected an integer >= 1, got {value!r}")
    rate = config["learning_rate"]
    if rate is not None and not (_is_number(rate) and math.isfinite(rate) and rate > 0):
        raise ConfigError(f"learning_rate: expected a finite number > 0, got {rate!r}")
    decay = config["weight_decay"]
    if decay is not None and not (_is_number(decay) and math.isfinite(decay) and decay >= 0):
        raise ConfigError(f"weight_decay: expected a finite number >= 0, got {decay!r}")


def check_list_values(config):
    """A key whose default is a list must be given a list: RecBole would iterate over a string's characters
    (``benchmark_filename=train`` looked for ``<dataset>.t.inter``)."""
    for key, value in config.external_config_dict.items():
        default = config.internal_config_dict.get(key)
        if key in SCALAR_LIST_KEYS or value is None or not (isinstance(default, list) or key in LIST_KEYS):
            continue
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list such as [a,b], got {value!r}")


def check_valid_metric_bigger(config):
    """RecBole sets ``valid_metric_bigger`` from ``valid_metric`` and drops a given value without a word:
    a value that contradicts the metric is refused instead of ignored."""
    if "valid_metric_bigger" not in config.external_config_dict:
        return
    given = config.external_config_dict["valid_metric_bigger"]
    if not isinstance(given, bool):
        raise ConfigError(f"valid_metric_bigger: expected True or False, got {given!r}")
    inferred = config["valid_metric_bigger"]
    if given != inferred:
        raise ConfigError(
            f"valid_metric_bigger: {given} contradicts valid_metric {config['valid_metric']}, for which "
            f"{'bigger' if inferred else 'smaller'} is better (RecBole sets it from the metric); remove the key"
        )


def validate_config(config):
    """All checks, then the model's own ``check_config`` if it has one."""
    check_unknown_keys(config)
    check_numeric_values(config)
    check_bool_values(config)
    check_list_values(config)
    check_ranges(config)
    check_valid_metric_bigger(config)
    check = getattr(config.model_class, "check_config", None)
    if check is not None:
        check(config)
