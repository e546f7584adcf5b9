"""The fixes RecBole 1.2.1 needs on today's numpy, pandas, scipy, torch and Ray, in one place.

RecBole 1.2.1 (the newest release) was written against numpy 1.x, pandas 1.x, scipy < 1.13,
torch < 2.6 and Ray 2.6. Each fix below is a :class:`Fix`: a test of whether the installed stack
needs it, and the narrowest change that restores RecBole's own behaviour (a restored attribute, a
module-scoped ``torch`` for the modules that read RecBole checkpoints, or RecBole's function
recompiled with the broken line replaced; a changed RecBole source refuses the fix rather than
replacing new code); the functions' docstrings say why. Nothing here makes RecBole stricter.

:func:`apply` is called by recbole_mml's entry points that use RecBole (the command line,
:mod:`recbole_mml.quick_start`, :mod:`recbole_mml.registry` and so :mod:`recbole_mml.config`, the
:mod:`recbole_mml.model` package), never by ``import recbole_mml.loss``; :func:`restore` undoes
every fix. On a RecBole other than 1.2.1,
:func:`apply` warns and changes nothing. ``recbole.quick_start`` imports Ray, which recbole_mml
does not need to train: its two fixes are applied when it is already imported (import it first,
or call :func:`apply` again after importing it).
"""

import ast
import importlib
import importlib.util
import inspect
import os
import sys
import textwrap
import types
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

from recbole_mml.errors import RecBoleVersionWarning

RECBOLE_VERSION = "1.2.1"

_undo = []  # (owner, attribute, previous value or _MISSING), in the order set
_checked = set()  # names of the fixes looked at by apply()
_applied = set()  # names of the fixes in place
_MISSING = object()


def _set(owner, name, value):
    """``setattr`` that :func:`restore` can undo (a class's own attribute, not an inherited one)."""
    previous = vars(owner).get(name, _MISSING)  # vars: numpy warns on getattr of some removed names
    _undo.append((owner, name, previous))
    setattr(owner, name, value)


def rewritten(function, replacements):
    """``function`` recompiled from its source with each ``old`` text replaced by ``new``.

    Every ``old`` must occur (all its occurrences are replaced): if RecBole's code changed, the fix
    refuses instead of replacing it. Line numbers stay RecBole's, so tracebacks point at RecBole's file.
    """
    source = textwrap.dedent(inspect.getsource(function))
    if "super()" in source:  # a recompiled method has no __class__ cell
        raise RuntimeError(f"{function.__qualname__} calls super(); it cannot be recompiled")
    for old, new in replacements.items():
        if old not in source:
            raise RuntimeError(
                f"{function.__module__}.{function.__qualname__} no longer contains {old!r}; "
                f"revisit recbole_mml.compat for this RecBole version"
            )
        source = source.replace(old, new)
    tree = ast.parse(source)
    ast.increment_lineno(tree, function.__code__.co_firstlineno - 1)
    namespace = {}
    exec(compile(tree, inspect.getsourcefile(function), "exec"), function.__globals__, namespace)
    fixed = namespace[function.__name__]
    fixed.__qualname__ = function.__qualname__
    fixed.__doc__ = function.__doc__
    return fixed


def _rewrite_method(module_name, class_name, method_name, replacements):
    cls = getattr(importlib.import_module(module_name), class_name)
    _set(cls, method_name, rewritten(vars(cls)[method_name], replacements))


def _rewrite_function(module_name, function_name, replacements):
    """The module's function, and the same function where its package re-exports it."""
    module = importlib.import_module(module_name)
    original = getattr(module, function_name)
    fixed = rewritten(original, replacements)
    _set(module, function_name, fixed)
    package = sys.modules[module_name.rpartition(".")[0]]
    if getattr(package, function_name, None) is original:
        _set(package, function_name, fixed)


# numpy ---------------------------------------------------------------------------------------

# numpy 2 removed these aliases. RecBole's Config.compatibility_settings reads float_, complex_
# and unicode_ and then sets the others to the same values as here; its metrics, dataset and
# layers use them, also in a process that never builds a Config (a loaded checkpoint's).
NUMPY_ALIASES = {
    "float_": "float64", "complex_": "complex128", "unicode_": "str_", "bool": "bool_", "int": "int_",
    "float": "float64", "complex": "complex128", "object": "object_", "str": "str_", "long": "int_",
    "unicode": "str_",
}


def _missing_numpy_aliases():
    import numpy as np

    return [name for name in NUMPY_ALIASES if name not in vars(np)]  # vars: numpy warns on getattr


def _numpy_aliases():
    import numpy as np

    for name in _missing_numpy_aliases():
        _set(np, name, getattr(np, NUMPY_ALIASES[name]))


# torch ---------------------------------------------------------------------------------------

# RecBole modules whose module-level ``torch.load`` reads a RecBole checkpoint (it pickles the Config).
CHECKPOINT_READERS = [
    "recbole.trainer.trainer",  # Trainer.resume_checkpoint and Trainer.evaluate(load_best_model=True)
    "recbole.model.general_recommender.convncf",  # train_method: after_pretrain (a BPR checkpoint)
    "recbole.model.general_recommender.nais",  # pretrain_path (a FISM checkpoint)
    "recbole.model.general_recommender.neumf",  # use_pretrain (MF and MLP checkpoints)
    "recbole.model.general_recommender.ract",  # train_stage: critic_pretrain / finetune
    "recbole.model.sequential_recommender.s3rec",  # train_stage: finetune
    "recbole.model.context_aware_recommender.kd_dagfm",  # warm_up
]


def _torch_loads_weights_only():
    import torch

    return torch.torch_version.TorchVersion(torch.__version__) >= (2, 6)


class _TorchReadingRecBoleCheckpoints(types.ModuleType):
    """``torch`` for the modules above only: its ``load`` reads RecBole checkpoints under torch >= 2.6."""

    def __init__(self):
        import torch

        super().__init__("torch", torch.__doc__)
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def load(self, f, map_location=None, **kwargs):
        return self._torch.load(f, map_location=map_location, **dict(kwargs, weights_only=False))


def _checkpoint_readers():
    proxy = _TorchReadingRecBoleCheckpoints()
    for module_name in CHECKPOINT_READERS:
        _set(importlib.import_module(module_name), "torch", proxy)


def _sine_switches_anomaly_mode_on():
    # Read the file without importing its package: the package's __init__ imports sine.py itself.
    root = os.path.dirname(importlib.util.find_spec("recbole").origin)
    with open(os.path.join(root, "model", "sequential_recommender", "sine.py"), encoding="utf-8") as f:
        return "set_detect_anomaly(True)" in f.read()


def _keep_anomaly_mode_off():
    """Import RecBole's SINE model without the global anomaly detection it switches on.

    ``sine.py`` calls ``torch.autograd.set_detect_anomaly(True)`` at import time, and any import of
    RecBole's sequential models (a model lookup, a checkpoint fix) runs it: every forward op then
    records a stack trace (an MMLMF epoch on Gowalla took 27 s instead of 20 s). The mode in place
    before the import is kept; once imported, the module never runs that line again.
    """
    import torch

    if "recbole.model.sequential_recommender.sine" in sys.modules:
        return
    enabled = torch.is_anomaly_enabled()
    importlib.import_module("recbole.model.sequential_recommender.sine")
    torch.autograd.set_detect_anomaly(enabled)


# scipy ---------------------------------------------------------------------------------------


def _dok_lacks_update():
    import scipy.sparse as sp

    return not hasattr(sp.dok_matrix, "_update")


def _dok_update(self, data):
    """dok_matrix._update (removed in scipy 1.13), which RecBole's graph models call."""
    self._dict.update(data)


def _restore_dok_update():
    import scipy.sparse as sp

    _set(sp.dok_matrix, "_update", _dok_update)


# pandas --------------------------------------------------------------------------------------


def _inplace_fillna_of_a_column_is_lost():
    """pandas 3 (copy-on-write): ``df[col].fillna(..., inplace=True)`` changes a copy only."""
    import pandas as pd

    frame = pd.DataFrame({"a": [None, 1.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame["a"].fillna(value=0.0, inplace=True)
    return bool(frame["a"].isna().any())


def _assign_fillna_back():
    module = "recbole.data.dataset.dataset"
    _rewrite_method(module, "Dataset", "_fill_nan", {
        "feat[field].fillna(value=0, inplace=True)": "feat[field] = feat[field].fillna(value=0)",
        "feat[field].fillna(value=feat[field].mean(), inplace=True)":
            "feat[field] = feat[field].fillna(value=feat[field].mean())",
    })
    # an empty token_seq cell stayed NaN and crashed with "'float' object has no attribute 'split'"
    _rewrite_method(module, "Dataset", "_load_feat", {
        'df[field].fillna(value="", inplace=True)': 'df[field] = df[field].fillna(value="")',
    })


# pandas 3's Series.agg(len) returns the Series' own length, not each cell's; these methods use it
# to split the concatenated cells of sequence fields (token_seq, float_seq) back apart.
AGG_LEN_METHODS = [
    ("recbole.data.dataset.dataset", "Dataset", "_remap"),
    ("recbole.data.dataset.dataset", "Dataset", "_normalize"),
    ("recbole.data.dataset.dataset", "Dataset", "_discretization"),
    ("recbole.data.dataset.kg_dataset", "KnowledgeBasedDataset", "_reset_ent_remapID"),
    ("recbole.data.dataset.sequential_dataset", "SequentialDataset", "_benchmark_presets"),
]


def _agg_len_is_not_per_cell():
    import pandas as pd

    return not isinstance(pd.Series([[1, 2], [3]]).agg(len), pd.Series)


def _per_cell_lengths():
    for module_name, class_name, method_name in AGG_LEN_METHODS:
        _rewrite_method(module_name, class_name, method_name, {".agg(len)": ".map(len)"})


# RecBole 1.2.1 itself -------------------------------------------------------------------------


def _collector_moves_tensors_only():
    """Collector.get_data_struct called ``.cpu()`` on every resource, including the item counts
    (a Counter) that the beyond-accuracy metrics (ItemCoverage, GiniIndex, ...) collect."""
    line = "self.data_struct._data_dict[key] = self.data_struct._data_dict[key].cpu()"
    _rewrite_method("recbole.evaluator.collector", "Collector", "get_data_struct", {
        line: f"if isinstance(self.data_struct._data_dict[key], torch.Tensor): {line}",
    })


# RecBole's quick_start (imports Ray) ----------------------------------------------------------

QUICK_START = "recbole.quick_start.quick_start"


def _ray_report_takes_a_dict():
    from ray import tune

    return "metrics" in inspect.signature(tune.report).parameters


def _report_one_dict():
    """objective_function called ``tune.report(**result)``; Ray >= 2.7 takes the metrics as one dict."""
    _rewrite_function(QUICK_START, "objective_function", {
        "tune.report(**test_result)": "tune.report(dict(test_result))",
    })


def _load_data_and_model_reads_its_checkpoint():
    """load_data_and_model read its checkpoint with a bare ``torch.load`` (refused by torch >= 2.6)."""
    _rewrite_function(QUICK_START, "load_data_and_model", {
        "torch.load(model_file)": "torch.load(model_file, weights_only=False)",
    })


# The fixes -----------------------------------------------------------------------------------


@dataclass
class Fix:
    """One fix: ``needed()`` tests the installed stack, ``apply()`` makes the change."""

    name: str
    needed: Callable[[], bool]
    apply: Callable[[], None]
    when_imported: Optional[str] = None  # applied only once this module is imported


FIXES = [
    Fix("numpy aliases", lambda: bool(_missing_numpy_aliases()), _numpy_aliases),
    Fix("SINE anomaly mode", _sine_switches_anomaly_mode_on, _keep_anomaly_mode_off),
    Fix("RecBole checkpoints under torch >= 2.6", _torch_loads_weights_only, _checkpoint_readers),
    Fix("scipy dok_matrix._update", _dok_lacks_update, _restore_dok_update),
    Fix("pandas in-place fillna", _inplace_fillna_of_a_column_is_lost, _assign_fillna_back),
    Fix("pandas agg(len)", _agg_len_is_not_per_cell, _per_cell_lengths),
    Fix("Collector item counts", lambda: True, _collector_moves_tensors_only),
    Fix("objective_function and Ray's report", _ray_report_takes_a_dict, _report_one_dict, QUICK_START),
    Fix("load_data_and_model under torch >= 2.6", _torch_loads_weights_only,
        _load_data_and_model_reads_its_checkpoint, QUICK_START),
]


def applied():
    """Names of the fixes in place."""
    return sorted(_applied)


def quiet_recbole_warnings():
    """Hide the warnings raised in RecBole's own modules: on today's stack RecBole 1.2.1 warns at every
    epoch (torch's ``GradScaler`` deprecation) and on every dataset load (pandas' inplace, read-only numpy
    arrays), burying a run's log; none of them is about the user's run. Warnings raised elsewhere stay."""
    warnings.filterwarnings("ignore", module=r"recbole(\.|$)")


def apply():
    """Apply every fix the installed stack needs and that is not in place yet; safe to call again."""
    import recbole

    if recbole.__version__ != RECBOLE_VERSION:
        if "RecBole version" not in _checked:  # one warning, however many entry points call apply()
            warnings.warn(
                f"recbole_mml's compatibility fixes are written for RecBole {RECBOLE_VERSION}, found "
                f"{recbole.__version__}: none applied", RecBoleVersionWarning, stacklevel=2,
            )
            _checked.add("RecBole version")
        return
    for fix in FIXES:
        if fix.name in _checked or (fix.when_imported and fix.when_imported not in sys.modules):
            continue
        if fix.needed():
            fix.apply()
            _applied.add(fix.name)
        _checked.add(fix.name)


def restore():
    """Undo every fix (RecBole's own code and numpy's attributes as they were before :func:`apply`)."""
    while _undo:
        owner, name, previous = _undo.pop()
        if previous is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, previous)
    _checked.clear()
    _applied.clear()
