"""Every fix RecBole 1.2.1 needs on today's numpy, pandas, scipy, torch and Ray, in one place.

RecBole 1.2.1 (the newest release) was written against numpy 1.x, pandas 1.x, scipy < 1.13,
torch < 2.6 and Ray 2.6. Each fix below is small, replaces only the RecBole code that breaks
(or restores removed library attributes RecBole relies on) and is applied once by :func:`apply`,
which ``import recbole_mml`` calls. Nothing here changes behaviour that works.
"""

import ast
import importlib
import inspect
import os
import sys
import tempfile
import textwrap
import types
import warnings

import numpy as np
import torch

_APPLIED = False

# numpy 2 removed these aliases; RecBole's Config.compatibility_settings reads the first three
# and RecBole's metrics, dataset and layers use the rest (np.float, np.long, np.bool, ...).
NUMPY_ALIASES = {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "bool8": np.bool_,  # Ray <= 2.6 uses it
    "float": float,
    "int": int,
    "bool": np.bool_,
    "complex": complex,
    "object": object,
    "str": str,
    "long": np.int64,
    "unicode": np.str_,
}


def numpy_aliases():
    """Restore only the numpy aliases that are missing (numpy >= 2); never override real ones."""
    for name, value in NUMPY_ALIASES.items():
        if name not in vars(np):  # not getattr: numpy warns on access to some removed names
            setattr(np, name, value)


def _config_compatibility_settings(self):
    """Replaces Config.compatibility_settings, which assigns from aliases numpy 2 removed."""
    numpy_aliases()


def load_checkpoint(path, device="cpu"):
    """Load a checkpoint written by RecBole's own trainer.

    torch >= 2.6 loads with ``weights_only=True`` by default, which refuses RecBole's checkpoints
    (they pickle the Config object). Only RecBole's checkpoints go through here (the trainer's, and
    the pretrained ones a few models read), so safe loading stays the default for everything else.
    """
    return torch.load(str(path), map_location=device, weights_only=False)


def save_checkpoint(state, path):
    """Write atomically (temp file + rename): a kill during the save never leaves a corrupt file."""
    path = str(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pth", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f, pickle_protocol=4)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _trainer_save_checkpoint(self, epoch, verbose=True, **kwargs):
    """Trainer._save_checkpoint with an atomic write (and the model's extra state, if any)."""
    from recbole.utils import set_color

    if not self.config["single_spec"] and self.config["local_rank"] != 0:
        return
    saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
    if epoch < 0 and os.path.isfile(saved_model_file):
        return  # fit's save of a resumed run with nothing left to train: epoch -1 made the next resume start over
    state = {
        "config": self.config,
        "epoch": epoch,
        "cur_step": self.cur_step,
        "best_valid_score": self.best_valid_score,
        "state_dict": self.model.state_dict(),
        "other_parameter": self.model.other_parameter(),
        "optimizer": self.optimizer.state_dict(),
    }
    from recbole_mml.checkpoint import write_trainer_checkpoint

    saved_model_file = write_trainer_checkpoint(self, state, saved_model_file)  # never replaces another run's file
    if verbose:
        self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")


def _trainer_resume_checkpoint(self, resume_file):
    """Trainer.resume_checkpoint, loading RecBole's own checkpoint format under torch >= 2.6; a checkpoint
    that does not fit the run is refused in one line (:func:`recbole_mml.checkpoint.resume_trainer`)."""
    from recbole_mml.checkpoint import resume_trainer

    resume_trainer(self, resume_file)


# RecBole modules that torch.load a pretrained RecBole checkpoint (it pickles the Config object).
PRETRAINED_CHECKPOINT_MODULES = [
    "recbole.model.general_recommender.convncf",  # train_method: after_pretrain (a BPR checkpoint)
    "recbole.model.general_recommender.nais",  # pretrain_path (a FISM checkpoint)
    "recbole.model.general_recommender.neumf",  # use_pretrain (MF and MLP checkpoints)
    "recbole.model.general_recommender.ract",  # train_stage: critic_pretrain / finetune
    "recbole.model.sequential_recommender.s3rec",  # train_stage: finetune
    "recbole.model.context_aware_recommender.kd_dagfm",  # warm_up
]


class _TorchReadingRecBoleCheckpoints(types.ModuleType):
    """``torch`` for the modules above only: its ``load`` reads RecBole checkpoints under torch >= 2.6."""

    def __init__(self):
        super().__init__("torch", torch.__doc__)

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def load(f, map_location=None, **kwargs):
        return load_checkpoint(f, map_location)


def _wrap_trainer_evaluate(original):
    """Trainer.evaluate loads the best checkpoint with a bare torch.load; load it here instead."""

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = load_checkpoint(checkpoint_file, self.device)
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            self.logger.info(
                f"Loading model structure and parameters from {checkpoint_file}"
            )
        return original(self, eval_data, load_best_model=False, show_progress=show_progress)

    evaluate.__doc__ = original.__doc__
    return evaluate


def _dok_update(self, data):
    """scipy >= 1.13 removed dok_matrix._update, which RecBole's graph models call."""
    self._dict.update(data)


def _collector_get_data_struct(self):
    """Collector.get_data_struct called .cpu() on ints (item counts), crashing coverage metrics."""
    import copy

    data = self.data_struct._data_dict
    for key, value in data.items():
        if isinstance(value, torch.Tensor):
            data[key] = value.cpu()
    returned_struct = copy.deepcopy(self.data_struct)
    for key in ["rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label"]:
        if key in self.data_struct:
            del self.data_struct[key]
    return returned_struct


def _dataset_fill_nan(self):
    """Dataset._fill_nan used ``df[col].fillna(inplace=True)``: a silent no-op under pandas 3."""
    from recbole.utils import FeatureType

    for feat_name in self.feat_name_list:
        feat = getattr(self, feat_name)
        for field in feat:
            ftype = self.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())
            else:
                dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                feat[field] = feat[field].apply(
                    lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x
                )


def _dataset_load_feat(self, filepath, source):
    """Dataset._load_feat, whose in-place fill of empty sequence cells is a no-op under pandas 3.

    Same as RecBole's except that the fill is assigned back (an empty token_seq cell used to crash
    with "'float' object has no attribute 'split'").
    """
    import pandas as pd
    from recbole.utils import FeatureSource, FeatureType

    load_col, unload_col = self._get_load_and_unload_col(source)
    if load_col == set():
        return None
    field_separator = self.config["field_separator"]
    encoding = self.config["encoding"]
    columns, usecols, dtype = [], [], {}
    with open(filepath, "r", encoding=encoding) as f:
        head = f.readline()[:-1]
    for field_type in head.split(field_separator):
        field, ftype = field_type.split(":")
        try:
            ftype = FeatureType(ftype)
        except ValueError:
            raise ValueError(f"Type {ftype} from field {field} is not supported.")
        if load_col is not None and field not in load_col:
            continue
        if unload_col is not None and field in unload_col:
            continue
        if isinstance(source, FeatureSource) or source != "link":
            self.field2source[field] = source
            self.field2type[field] = ftype
            if not ftype.value.endswith("seq"):
                self.field2seqlen[field] = 1
            if "float" in ftype.value:
                self.field2bucketnum[field] = 2
        columns.append(field)
        usecols.append(field_type)
        dtype[field_type] = np.float64 if ftype == FeatureType.FLOAT else str
    if not columns:
        self.logger.warning(f"No columns has been loaded from [{source}]")
        return None

    df = pd.read_csv(
        filepath, delimiter=field_separator, usecols=usecols, dtype=dtype,
        encoding=encoding, engine="python",
    )
    df.columns = columns
    seq_separator = self.config["seq_separator"]
    for field in columns:
        ftype = self.field2type[field]
        if not ftype.value.endswith("seq"):
            continue
        cells = df[field].fillna(value="").values
        cast = str if ftype == FeatureType.TOKEN_SEQ else float
        df[field] = [np.array([cast(v) for v in cell.split(seq_separator) if v]) for cell in cells]
        max_seq_len = max(map(len, df[field].values))
        if self.config["seq_len"] and field in self.config["seq_len"]:
            seq_len = self.config["seq_len"][field]
            df[field] = [seq[:seq_len] for seq in df[field].values]
            self.field2seqlen[field] = min(seq_len, max_seq_len)
        else:
            self.field2seqlen[field] = max_seq_len
    return df


# pandas 3's Series.agg(len) returns the Series' own length, not each cell's; these RecBole methods
# use it to split the concatenated cells of sequence fields (token_seq, float_seq) back apart.
AGG_LEN_METHODS = [
    ("recbole.data.dataset.dataset", "Dataset", "_remap"),
    ("recbole.data.dataset.dataset", "Dataset", "_normalize"),
    ("recbole.data.dataset.dataset", "Dataset", "_discretization"),
    ("recbole.data.dataset.kg_dataset", "KnowledgeBasedDataset", "_reset_ent_remapID"),
    ("recbole.data.dataset.sequential_dataset", "SequentialDataset", "_benchmark_presets"),
]


def per_cell_lengths(function):
    """``function`` recompiled with ``.agg(len)`` as ``.map(len)``: per-cell lengths under pandas 3 too."""
    source = textwrap.dedent(inspect.getsource(function))
    if ".agg(len)" not in source:
        raise RuntimeError(f"{function.__qualname__} no longer calls .agg(len); revisit recbole_mml.compat")
    tree = ast.parse(source.replace(".agg(len)", ".map(len)"))
    ast.increment_lineno(tree, function.__code__.co_firstlineno - 1)  # tracebacks keep RecBole's lines
    namespace = {}
    exec(compile(tree, inspect.getsourcefile(function), "exec"), function.__globals__, namespace)
    fixed = namespace[function.__name__]
    fixed.__qualname__ = function.__qualname__
    return fixed


def _ray_objective_function(config_dict=None, config_file_list=None, saved=True):
    """RecBole's objective_function calls ``tune.report(**result)``; Ray >= 2.7 takes a dict."""
    from recbole_mml.quick_start import objective_function

    return objective_function(config_dict, config_file_list, saved)


def _load_data_and_model(model_file):
    """recbole.quick_start.load_data_and_model reads its checkpoint with a bare torch.load (torch >= 2.6)."""
    from recbole_mml.quick_start import load_data_and_model

    return load_data_and_model(model_file)


def keep_anomaly_mode_off():
    """Import RecBole's SINE model without the global anomaly detection it switches on.

    ``recbole/model/sequential_recommender/sine.py`` (1.2.1) calls ``torch.autograd.set_detect_anomaly(True)``
    at import time, and any import of RecBole's sequential models (a model lookup, a checkpoint
    patch) runs it: every forward op then records a stack trace and every backward checks for NaN
    (an MMLMF epoch on Gowalla took 27 s instead of 20 s). The previous mode is restored after the
    first import; once imported, the module never runs that line again.
    """
    if "recbole.model.sequential_recommender.sine" in sys.modules:
        return
    enabled = torch.is_anomaly_enabled()
    importlib.import_module("recbole.model.sequential_recommender.sine")
    torch.autograd.set_detect_anomaly(enabled)


def apply():
    """Apply every fix once; safe to call again."""
    global _APPLIED
    if _APPLIED:
        return
    numpy_aliases()
    keep_anomaly_mode_off()

    import scipy.sparse as sp
    from recbole.config import configurator
    from recbole.data.dataset import dataset
    from recbole.evaluator import collector
    from recbole.trainer import trainer

    configurator.Config.compatibility_settings = _config_compatibility_settings
    trainer.Trainer._save_checkpoint = _trainer_save_checkpoint
    trainer.Trainer.resume_checkpoint = _trainer_resume_checkpoint
    trainer.Trainer.evaluate = _wrap_trainer_evaluate(trainer.Trainer.evaluate)
    if not hasattr(sp.dok_matrix, "_update"):
        sp.dok_matrix._update = _dok_update
    collector.Collector.get_data_struct = _collector_get_data_struct
    dataset.Dataset._fill_nan = _dataset_fill_nan
    dataset.Dataset._load_feat = _dataset_load_feat
    for module_name, class_name, method_name in AGG_LEN_METHODS:
        cls = getattr(importlib.import_module(module_name), class_name)
        setattr(cls, method_name, per_cell_lengths(getattr(cls, method_name)))

    for module_name in PRETRAINED_CHECKPOINT_MODULES:
        importlib.import_module(module_name).torch = _TorchReadingRecBoleCheckpoints()

    import recbole.quick_start as quick_start_pkg
    from recbole.quick_start import quick_start as quick_start_module

    quick_start_module.objective_function = _ray_objective_function
    quick_start_pkg.objective_function = _ray_objective_function
    quick_start_module.load_data_and_model = _load_data_and_model
    quick_start_pkg.load_data_and_model = _load_data_and_model
    _APPLIED = True
