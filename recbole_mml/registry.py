"""Model and trainer lookup: recbole_mml's own classes first, then RecBole's (as in RecBole-GNN)."""

import difflib
import importlib
import importlib.util
import pkgutil

from recbole.utils import get_trainer as recbole_get_trainer

from recbole_mml import compat
from recbole_mml.errors import ConfigError

compat.apply()  # RecBole's model modules run under today's libraries (and SINE's import keeps anomaly mode off)

OWN_MODEL_PACKAGES = ["recbole_mml.model.general_recommender"]
RECBOLE_MODEL_PACKAGES = [
    "recbole.model.general_recommender",
    "recbole.model.context_aware_recommender",
    "recbole.model.sequential_recommender",
    "recbole.model.knowledge_aware_recommender",
    "recbole.model.exlib_recommender",
]


def _module_names(package):
    try:
        spec = importlib.util.find_spec(package)
    except ImportError:
        return []
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)]


def own_model_names():
    """Class names of recbole_mml's models (one file per model, file = class name in lower case)."""
    names = []
    for package in OWN_MODEL_PACKAGES:
        for module_name in _module_names(package):
            module = importlib.import_module(f"{package}.{module_name}")
            names += [n for n in dir(module) if n.lower() == module_name]
    return sorted(names)


def _suggestion(name):
    """' ; did you mean X?' for the closest known model name, or ''."""
    modules = {m: p for p in RECBOLE_MODEL_PACKAGES for m in _module_names(p)}
    own = {n.lower(): n for n in own_model_names()}
    close = difflib.get_close_matches(name.lower(), list(own) + list(modules), n=1, cutoff=0.6)
    if not close:
        return ""
    key = close[0]
    if key in own:
        return f"; did you mean '{own[key]}'?"
    try:
        module = importlib.import_module(f"{modules[key]}.{key}")
        key = next(a for a in dir(module) if a.lower() == key)
    except (ImportError, StopIteration):
        pass
    return f"; did you mean '{key}'?"


def _find_model(packages, model_name):
    for package in packages:
        module_path = f"{package}.{model_name.lower()}"
        try:
            if importlib.util.find_spec(module_path) is None:
                continue
        except ImportError:  # e.g. exlib_recommender without xgboost / lightgbm installed
            continue
        module = importlib.import_module(module_path)
        if hasattr(module, model_name):
            return getattr(module, model_name)
    return None


def get_model(model_name):
    """Return the model class named ``model_name`` from recbole_mml, else from RecBole."""
    if not isinstance(model_name, str) or not model_name:
        raise ConfigError(f"model: expected a model name, got {model_name!r}")
    model_class = _find_model(OWN_MODEL_PACKAGES + RECBOLE_MODEL_PACKAGES, model_name)
    if model_class is None:
        raise ConfigError(
            f"model: unknown model '{model_name}' (neither recbole_mml nor RecBole has it)"
            + _suggestion(model_name)
        )
    return model_class


def get_trainer(model_type, model_name):
    """``recbole_mml.trainer.<Model>Trainer`` if defined, MMLTrainer for recbole_mml's contrastive
    models, else RecBole's choice (as RecBole-GNN's ``get_trainer``; models do not import trainers),
    with recbole_mml's checkpoints, optimizer option and evaluation
    (:func:`recbole_mml.trainer.with_recbole_mml`)."""
    from recbole_mml import trainer
    from recbole_mml.model.abstract_recommender import ContrastiveRecommender

    own = getattr(trainer, f"{model_name}Trainer", None)
    if own is not None:
        return own
    if issubclass(get_model(model_name), ContrastiveRecommender):
        return trainer.MMLTrainer
    return trainer.with_recbole_mml(recbole_get_trainer(model_type, model_name))
