"""RecBole's Config, extended with recbole_mml's models and yaml files, and explicit overrides.

Precedence is RecBole's: recbole_mml defaults (``properties/overall.yaml``,
``properties/model/<Model>.yaml``, ``properties/dataset/<name>.yaml``) sit on top of RecBole's own
defaults, and user config files < ``config_dict`` < ``--key=value`` overrides beat all of them.
Overrides are passed in (``cmd_args``) instead of read from ``sys.argv``, so a Ray trial or a
library call never picks up the driver's command line.
"""

import glob
import importlib.resources
import os

import recbole
import yaml
from recbole.config import Config as RecBoleConfig

from recbole_mml.errors import ConfigError
from recbole_mml.registry import get_model


def _properties_dir():
    """The yaml defaults: ``recbole_mml/properties`` in an installed package (setup.py ships the
    repository's top-level ``properties/`` there), else ``properties/`` beside the package's folder."""
    installed = importlib.resources.files("recbole_mml") / "properties"
    if installed.is_dir():
        return str(installed)
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "properties")


PROPERTIES_DIR = _properties_dir()


RECBOLE_PROPERTIES = os.path.join(os.path.dirname(recbole.__file__), "properties")


def yaml_keys(pattern):
    """The top-level keys of the yaml files matching ``pattern``."""
    keys = set()
    for path in glob.glob(pattern):
        with open(path, encoding="utf-8") as f:
            keys.update((yaml.safe_load(f) or {}).keys())
    return keys


def model_keys(model, model_class):
    """The keys of the model's own yaml files (RecBole's and recbole_mml's): its hyper-parameters."""
    keys = yaml_keys(os.path.join(RECBOLE_PROPERTIES, "model", f"{model}.yaml"))
    for path in model_yaml_files(model_class):
        keys |= yaml_keys(path)
    return keys


def model_yaml_files(model_class):
    """``properties/model/<Class>.yaml`` for the model and each base class that has one, base first.

    Shared defaults (loss, sampler) live once in the base class's yaml.
    """
    files = []
    for cls in reversed(getattr(model_class, "__mro__", ())):
        path = os.path.join(PROPERTIES_DIR, "model", f"{cls.__name__}.yaml")
        if os.path.isfile(path):
            files.append(path)
    return files


def parse_overrides(args):
    """``['--epochs=3', '--margins=[0.8,0.9]']`` -> ``{'epochs': '3', 'margins': '[0.8,0.9]'}`` (strings)."""
    overrides = {}
    for arg in args or []:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not sep or not key or key.startswith("-"):
            raise ConfigError(f"malformed override '{arg}': expected --key=value")
        if key in overrides and overrides[key] != value:
            raise ConfigError(f"override '--{key}' given twice with different values")
        overrides[key] = value
    return overrides


def yaml_error_text(error):
    """``line L, column C: problem`` of a yaml error (its first line says only what was being parsed)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def read_flow_values(overrides):
    """Read override values that RecBole's ``eval`` left as strings but that are yaml lists or mappings.

    ``--benchmark_filename=[train,valid,test]`` is not Python, so RecBole kept the string and later
    iterated over its characters; as yaml flow syntax it is the list the user wrote.
    """
    for key, value in overrides.items():
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            try:
                overrides[key] = yaml.safe_load(value)
            except yaml.YAMLError as e:
                raise ConfigError(f"override '--{key}': not a valid list or mapping ({yaml_error_text(e)})") from None
    return overrides


class Config(RecBoleConfig):
    """RecBole's Config that knows recbole_mml's models and properties."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None):
        self._cmd_args = list(cmd_args or [])
        for path in config_file_list or []:
            if not os.path.isfile(path):
                raise ConfigError(f"config file '{path}' does not exist")
        super().__init__(model, dataset, config_file_list, config_dict)

    def _load_cmd_line(self):
        return read_flow_values(self._convert_config_dict(parse_overrides(self._cmd_args)))

    def _load_config_files(self, file_list):
        merged = {}
        for path in file_list or []:
            with open(path, "r", encoding="utf-8") as f:
                try:
                    content = yaml.load(f.read(), Loader=self.yaml_loader)
                except yaml.YAMLError as e:
                    raise ConfigError(f"config file '{path}' is not valid yaml: {yaml_error_text(e)}") from None
            if content is None:
                continue
            if not isinstance(content, dict):
                raise ConfigError(f"config file '{path}': expected a mapping of key: value, got {type(content).__name__}")
            merged.update(content)
        return merged

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise ConfigError("model: not given (use --model=NAME, a config file or config_dict)")
        if isinstance(model, str):
            model_class = get_model(model)
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise ConfigError("dataset: not given (use --dataset=NAME, a config file or config_dict)")
        return model, model_class, dataset

    def model_keys(self):
        """The hyper-parameters of this run's model (:func:`model_keys`)."""
        return model_keys(self.model, self.model_class)

    def _get_final_config_dict(self):
        """RecBole's merge, after the model has read RecBole's names for its own keys (if it does)."""
        read_recbole_keys = getattr(self.model_class, "read_recbole_keys", None)
        if read_recbole_keys is not None:
            self.external_config_dict = read_recbole_keys(self.external_config_dict, self.internal_config_dict)
        return super()._get_final_config_dict()

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        overall = os.path.join(PROPERTIES_DIR, "overall.yaml")
        for path in [overall] + model_yaml_files(model_class):
            self._update_internal_config_dict(path)
        dataset_file = os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml")
        if os.path.isfile(dataset_file):
            loaded = self._update_internal_config_dict(dataset_file) or {}
            self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]
