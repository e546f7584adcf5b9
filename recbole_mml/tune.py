"""Hyper-parameter search with Ray Tune, on this machine or on an existing Ray cluster.

    python run_recbole_mml.py tune --model=MMLMF --dataset=ml-100k \\
        --params_file=properties/search/mmlmf.yaml --num_samples=20 [--key=value ...]
    python run_recbole_mml.py tune --resume --output=DIR

The dataset is loaded and split once, in the driver; trials take the split from Ray's object
store and build their own loaders with their own config (so ``train_batch_size`` can be searched).
A search over a key that changes the split itself (``eval_args``, ``seed``, filters, ...) prepares
the data in every trial instead. Each trial reports the validation metric after every evaluation,
so ASHA stops weak trials early, and hands RecBole's best-model checkpoint to Ray whenever it
improves, so an interrupted search resumes where it stopped. ``--output`` receives ``trials.csv``,
``best.yaml`` (``run_recbole_mml.py --model=M --dataset=D --config_files=best.yaml`` trains the best
trial again) and ``best_test.json`` (the best trial's checkpoint evaluated on the test set).
"""

import argparse
import contextlib
import csv
import difflib
import glob
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass

import yaml

from recbole_mml.config import parse_overrides
from recbole_mml.errors import ConfigError
from recbole_mml.search_space import SearchSpace, load_search_space

EXPERIMENT_NAME = "ray"  # Ray's experiment folder inside --output
STATE_FILE = "search.json"  # the search's arguments, so --resume needs only --output
SCHEDULERS = ("asha", "fifo")
SEARCHERS = ("random", "grid", "optuna")
FINISHED_STATUSES = ("TERMINATED", "STOPPED", "ERROR")

# Keys that change how the dataset is loaded, split or sampled: searching one of them means the
# driver's split cannot be shared, and every trial prepares its own data.
SPLIT_KEYS = {
    "data_path", "seed", "repeatable", "eval_args", "train_neg_sample_args", "valid_neg_sample_args",
    "test_neg_sample_args", "save_dataset", "dataset_save_path", "save_dataloaders", "dataloaders_save_path",
}


def tune_parser():
    parser = argparse.ArgumentParser(
        prog="run_recbole_mml.py tune",
        description="Ray Tune search over a RecBole search-space file; any other --key=value fixes a config key.",
        allow_abbrev=False,
    )
    parser.add_argument("--model", "-m", default="MMLMF", help="model name (recbole_mml's or RecBole's)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", default=None, help="config files, separated by spaces")
    parser.add_argument("--params_file", default=None, help="search space: RecBole hyper file or .yaml")
    parser.add_argument(
        "--num_samples", type=int, default=None, help="trials (grid: passes over the grid); default 10, grid 1"
    )
    parser.add_argument("--cpus_per_trial", type=float, default=1, help="CPUs per trial, also its torch threads")
    parser.add_argument("--gpus_per_trial", type=float, default=0, help="GPUs per trial (fractions share a GPU)")
    parser.add_argument("--max_concurrent", type=int, default=None, help="trials at once (default: as resources allow)")
    parser.add_argument("--scheduler", choices=SCHEDULERS, default="asha", help="asha stops weak trials early")
    parser.add_argument("--search", choices=SEARCHERS, default="random", help="how trials' values are chosen")
    parser.add_argument("--grace_period", type=int, default=1, help="ASHA: evaluations before a trial can be stopped")
    parser.add_argument("--reduction_factor", type=float, default=4, help="ASHA: keep the best 1/N at each rung")
    parser.add_argument("--address", default=None, help="existing Ray cluster (auto, ip:port); default: a local Ray")
    parser.add_argument("--output", default=None, help="results folder (default ./ray_results/<model>-<dataset>)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted search in --output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return parser


def parse_args(argv):
    """Flags and ``--key=value`` overrides; a resumed search takes its saved arguments from --output."""
    args, overrides = tune_parser().parse_known_args(argv)
    given = parse_overrides(overrides)  # refuses anything that is not --key=value
    if "checkpoint_dir" in given:
        raise ConfigError(
            "--checkpoint_dir: a search keeps each trial's checkpoint in its Ray trial folder under --output"
        )
    # trials run in their own folders: a relative data_path must not depend on where they run
    args.overrides = [f"--data_path={os.path.abspath(given['data_path'])}" if o.startswith("--data_path=") else o
                      for o in overrides]
    if args.resume:
        if not args.output:
            raise ConfigError("--resume: expected --output=DIR of the search to continue")
        output = os.path.abspath(args.output)
        state = os.path.join(output, STATE_FILE)
        if not os.path.isfile(state):
            raise ConfigError(f"--resume: no search to resume in '{output}' (no {STATE_FILE})")
        with open(state, encoding="utf-8") as f:
            saved = json.load(f)
        saved.update(output=output, resume=True, debug=args.debug, address=args.address or saved.get("address"))
        return argparse.Namespace(**saved)
    if not args.params_file:
        raise ConfigError("--params_file: expected a search-space file (RecBole hyper syntax or .yaml)")
    if args.num_samples is None:
        args.num_samples = 1 if args.search == "grid" else 10
    for name, value, low in (("num_samples", args.num_samples, 1), ("max_concurrent", args.max_concurrent, 1),
                             ("grace_period", args.grace_period, 1)):
        if value is not None and value < low:
            raise ConfigError(f"--{name}: expected an integer >= {low}, got {value}")
    if not args.cpus_per_trial > 0 or not args.gpus_per_trial >= 0:
        raise ConfigError("--cpus_per_trial / --gpus_per_trial: expected > 0 CPUs and >= 0 GPUs per trial")
    if not args.reduction_factor > 1:
        raise ConfigError(f"--reduction_factor: expected a number > 1, got {args.reduction_factor}")
    args.output = os.path.abspath(args.output or os.path.join("ray_results", f"{args.model}-{args.dataset}"))
    args.params_file = os.path.abspath(args.params_file)
    args.config_files = [os.path.abspath(p) for p in (args.config_files or "").split()]
    return args


# What a trial runs ----------------------------------------------------------------------------


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
        from recbole_mml.quick_start import build_config

        config_dict = {**self.fixed, **values, **extra}
        return build_config(self.model, self.dataset, self.config_files or None, config_dict, self.overrides)


@dataclass
class SplitData:
    """The driver's train/valid/test datasets and samplers: loaded and split once per search."""

    datasets: tuple
    samplers: tuple


def split_data(config):
    """RecBole's data_preparation up to the loaders, which each trial builds with its own config."""
    from recbole.data import create_dataset
    from recbole.data.utils import create_samplers
    from recbole.utils import init_seed

    from recbole_mml.data import check_dataset_files, check_no_cold_users

    check_dataset_files(config)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    built = dataset.build()
    split = SplitData(tuple(built), tuple(create_samplers(config, dataset, built)))
    check_no_cold_users(config, *build_loaders(config, split))  # as prepare_data does
    return split


def build_loaders(config, split):
    """Train/valid/test loaders over a shared split, with this config's batch sizes and sampling."""
    from recbole.data.utils import get_dataloader

    (train, valid, test), (train_sampler, valid_sampler, test_sampler) = split.datasets, split.samplers
    return (
        get_dataloader(config, "train")(config, train, train_sampler, shuffle=config["shuffle"]),
        get_dataloader(config, "valid")(config, valid, valid_sampler, shuffle=False),
        get_dataloader(config, "test")(config, test, test_sampler, shuffle=False),
    )


def _log_to_file_only(config):
    """RecBole's log file in the trial's folder, without RecBole's console handler: every trial's
    worker prints to the driver's console, where Ray's progress table belongs."""
    from recbole.utils import init_logger

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    init_logger(config)
    for handler in list(root.handlers):
        if not isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)


def _model_file(directory):
    files = sorted(glob.glob(os.path.join(directory, "*.pth")))
    if len(files) != 1:
        raise RuntimeError(f"expected one RecBole checkpoint (.pth) in {directory}, found {files}")
    return files[0]


def train_trial(params, setup, split):
    """One trial: RecBole's training of the sampled config, reporting after every evaluation.

    Builds the trainer as ``quick_start.run_recbole_mml`` does (``build_trainer``), so a rerun of
    ``best.yaml`` draws the same random numbers and reproduces the trial's scores.
    """
    import ray
    from ray import tune
    from recbole.utils import init_seed

    from recbole_mml.quick_start import build_trainer, prepare_data

    warnings.filterwarnings("ignore", module=r"recbole(\.|$)")  # as the CLI: RecBole's deprecation noise
    values = setup.space.decode(params)
    # RecBole sets CUDA_VISIBLE_DEVICES from gpu_id: give it the GPUs Ray assigned to this trial
    gpu_id = ",".join(str(i) for i in ray.get_gpu_ids()) if setup.gpus_per_trial else ""
    with tempfile.TemporaryDirectory(prefix="recbole-checkpoint-") as checkpoint_dir:
        config = setup.config(values, checkpoint_dir=checkpoint_dir, gpu_id=gpu_id)
        _log_to_file_only(config)
        logger = logging.getLogger()
        logger.info(config)
        init_seed(config["seed"], config["reproducibility"])
        if split is None:
            dataset, train_data, valid_data, _ = prepare_data(config)
        else:
            train_data, valid_data, _ = build_loaders(config, split)
            dataset = train_data._dataset
        trainer = build_trainer(config, dataset, train_data)
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            checkpoint.to_directory(checkpoint_dir)
            trainer.resume_checkpoint(_model_file(checkpoint_dir))

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


# The driver -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _visible_devices_kept():
    """RecBole's Config sets CUDA_VISIBLE_DEVICES from gpu_id; keep the driver's (Ray reads it)."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def _user_keys(config_files, overrides):
    """Keys the user set in config files or overrides (written to best.yaml)."""
    keys = []
    for path in config_files:
        with open(path, encoding="utf-8") as f:
            keys += list((yaml.safe_load(f) or {}).keys())
    keys += list(parse_overrides(overrides))
    return list(dict.fromkeys(keys))


def _check_space_keys(space, model, strict):
    from recbole_mml.registry import get_model
    from recbole_mml.validation import known_keys

    known = known_keys(model, get_model(model))
    for key in space.keys:
        if key in ("model", "dataset"):
            raise ConfigError(f"{space.where(key)}: a search tunes one model on one dataset; set --{key} instead")
        if key not in known and strict is not False:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{space.where(key)}: unknown config key '{key}' for model {model}{hint}")


def plan_search(args):
    """Check everything that can be checked before Ray starts; returns (setup, driver config, shared?)."""
    from recbole.utils import ModelType

    from recbole_mml.quick_start import build_config

    space = load_search_space(args.params_file)
    overridden = parse_overrides(args.overrides)
    for key in space.keys:
        if key in overridden:
            raise ConfigError(f"{space.where(key)}: '{key}' is searched and also fixed by --{key}={overridden[key]}")
    with _visible_devices_kept():
        config = build_config(args.model, args.dataset, args.config_files or None, None, args.overrides)
        _check_space_keys(space, config["model"], config["strict_config_keys"])
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
    split_keys = SPLIT_KEYS | set(_dataset_arguments())
    shared = config["MODEL_TYPE"] != ModelType.KNOWLEDGE and not split_keys & set(space.keys)
    return setup, config, shared


def _dataset_arguments():
    from recbole.utils.argument_list import dataset_arguments

    return dataset_arguments


SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def init_local_ray(num_cpus=None):
    """Start a private local Ray whose workers can import recbole_mml from this source tree."""
    import ray

    paths = [SOURCE_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    ray.init(
        address="local", num_cpus=num_cpus, include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}},
    )


def attach_ray(address):
    """Join an existing cluster and ship this source tree to its workers (Ray's runtime_env
    working_dir, which leaves out what .gitignore lists); the nodes need the same packages."""
    import ray

    try:
        ray.init(address=address, runtime_env={"working_dir": SOURCE_ROOT})
    except ConnectionError as e:
        raise ConfigError(
            f"--address: cannot join the Ray cluster at '{address}' ({e}); a cluster with token "
            f"authentication (Ray's default) needs RAY_AUTH_MODE=token and its token"
        ) from None


def _searcher(args, metric, mode, seed):
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    if args.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        searcher = OptunaSearch(metric=metric, mode=mode, seed=seed)
        return ConcurrencyLimiter(searcher, max_concurrent=args.max_concurrent) if args.max_concurrent else searcher
    return BasicVariantGenerator(max_concurrent=args.max_concurrent or 0, random_state=seed)


def _scheduler(args, setup, config):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if args.scheduler == "fifo":
        return FIFOScheduler()
    if {"epochs", "eval_step"} & set(setup.space.keys):
        max_t = 10**6  # the trials' own epochs end them
    else:
        max_t = max(1, config["epochs"] // config["eval_step"])
    return ASHAScheduler(
        time_attr="training_iteration", max_t=max_t, grace_period=min(args.grace_period, max_t),
        reduction_factor=args.reduction_factor,
    )


def _save_state(args):
    os.makedirs(args.output, exist_ok=True)
    state = {k: v for k, v in vars(args).items() if k not in ("resume", "debug")}
    space_copy = os.path.join(args.output, "search_space" + os.path.splitext(args.params_file)[1])
    if os.path.abspath(args.params_file) != space_copy:
        shutil.copyfile(args.params_file, space_copy)
    state["params_file"] = space_copy  # the search resumes over this copy, even if the original changes
    with open(os.path.join(args.output, STATE_FILE), "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2)


def run_search(args):
    """Run (or resume) the search and write its outputs; returns the process exit code."""
    import ray
    from ray import tune

    experiment = os.path.join(args.output, EXPERIMENT_NAME)
    if not args.resume and os.path.exists(experiment):
        raise ConfigError(
            f"--output: '{args.output}' already holds a search; continue it with --resume or pick another folder"
        )
    setup, config, shared = plan_search(args)
    mode = "max" if config["valid_metric_bigger"] else "min"
    started = not ray.is_initialized()
    if started:
        if args.address:
            attach_ray(args.address)
        else:
            init_local_ray()
    try:
        split = None
        if shared:
            start = time.perf_counter()
            split = split_data(config)
            print(f"dataset {setup.dataset} loaded and split once in {time.perf_counter() - start:.1f}s; "
                  f"trials share it through Ray's object store")
        trainable = tune.with_resources(
            tune.with_parameters(train_trial, setup=setup, split=split),
            {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial},
        )
        if args.resume:
            if not tune.Tuner.can_restore(experiment):
                raise ConfigError(f"--resume: '{experiment}' holds no Ray Tune experiment to restore")
            tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True)
        else:
            _save_state(args)
            tuner = tune.Tuner(
                trainable,
                param_space=setup.space.to_ray(grid=args.search == "grid"),
                tune_config=tune.TuneConfig(
                    metric=setup.rank_metric, mode=mode, num_samples=args.num_samples,
                    search_alg=_searcher(args, setup.rank_metric, mode, config["seed"]),
                    scheduler=_scheduler(args, setup, config),
                    reuse_actors=True,  # a worker that has imported torch and RecBole runs the next trial
                ),
                run_config=tune.RunConfig(
                    name=EXPERIMENT_NAME, storage_path=args.output,
                    failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                    sync_config=tune.SyncConfig(sync_artifacts=True),
                ),
            )
        tuner.fit()
        return write_outputs(args, setup, config, split, mode)
    finally:
        if started:
            ray.shutdown()


# Outputs -------------------------------------------------------------------------------------


def _plain(value):
    """A yaml/json-safe copy of a config value (tuples, numpy scalars, devices)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _error_line(trial):
    """The last line of a failed trial's error: the exception and its message."""
    error = trial.get_error()
    if error is None:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def trial_rows(analysis, setup):
    """One row per trial: id, status, epochs, best and last validation score, error, searched values."""
    metric = setup.metric
    rows = []
    for trial in analysis.trials:
        last = trial.last_result or {}
        status = trial.status
        if status == "TERMINATED" and last and not last.get("finished", True):
            status = "STOPPED"  # ended by the scheduler before its epochs were done
        row = {
            "trial_id": trial.trial_id,
            "status": status,
            "epochs": last.get("epoch", 0),
            metric: last.get(setup.rank_metric, ""),
            f"last_{metric}": last.get(metric, ""),
            "error": _error_line(trial) if status == "ERROR" else "",
        }
        for key, value in setup.space.decode(trial.config).items():
            row[key] = json.dumps(_plain(value)) if isinstance(value, (list, dict, tuple)) else value
        rows.append(row)
    return rows


def _best_row(rows, metric, mode):
    ranked = [r for r in rows if r["status"] in ("TERMINATED", "STOPPED") and isinstance(r[metric], (int, float))
              and math.isfinite(r[metric])]
    if not ranked:
        return None
    pick = max if mode == "max" else min
    return pick(ranked, key=lambda r: r[metric])


def write_trials_csv(path, rows, metric, mode):
    """Best trial first; trials without a score (errors, not started) last."""
    sign = -1 if mode == "max" else 1

    def rank(row):
        score = row[metric]
        scored = isinstance(score, (int, float)) and math.isfinite(score)
        return (not scored, sign * score if scored else 0, row["trial_id"])

    rows = sorted(rows, key=rank)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def best_yaml_text(args, setup, config, best, trial_config, n_trials):
    """The best trial as a config file: user settings, per-trial threads and the searched values."""
    values = {"model": setup.model, "dataset": setup.dataset}
    for key in _user_keys(setup.config_files, setup.overrides):
        if key in ("model", "dataset"):
            continue
        values[key] = setup.fixed["data_path"] if key == "data_path" else config[key]
    values.setdefault("torch_num_threads", setup.fixed["torch_num_threads"])
    values.update(setup.space.decode(trial_config))
    lines = [
        f"# Best of {n_trials} trials of a Ray Tune search ({setup.metric} = {best[setup.metric]}, "
        f"trial {best['trial_id']}).",
        f"# Train it again: python run_recbole_mml.py --model={setup.model} --dataset={setup.dataset} "
        f"--config_files={os.path.join(args.output, 'best.yaml')}",
    ]
    if best["status"] == "STOPPED":
        values["epochs"] = best["epochs"]
        lines.append("# The scheduler stopped this trial early: epochs is set to what it trained.")
    return "\n".join(lines) + "\n" + yaml.dump(_plain(values), Dumper=_BestDumper, sort_keys=False)


class _BestDumper(yaml.SafeDumper):
    """One key per line, lists inline (``margins: [0.8, 0.9]``), as in RecBole's own yaml files."""


_BestDumper.add_representer(
    list, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)
)


def evaluate_checkpoint(model_file, driver_config, split, workdir):
    """The test result of a trial's best model, on the same split the trial was validated on."""
    import torch
    from recbole.utils import init_seed

    from recbole_mml.compat import load_checkpoint
    from recbole_mml.quick_start import prepare_data
    from recbole_mml.registry import get_model, get_trainer

    config = load_checkpoint(model_file, driver_config["device"])["config"]
    config["device"] = driver_config["device"]
    config["checkpoint_dir"] = workdir
    init_seed(config["seed"], config["reproducibility"])
    if split is None:
        _, train_data, _, test_data = prepare_data(config)
    else:
        train_data, _, test_data = build_loaders(config, split)
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    threads = torch.get_num_threads()
    # the trial's thread count: on a busy machine more threads than cores make small ops crawl
    torch.set_num_threads(int(config["torch_num_threads"] or threads))
    try:
        with contextlib.chdir(workdir):  # RecBole's Trainer opens ./log_tensorboard
            trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
            return dict(trainer.evaluate(test_data, load_best_model=True, model_file=model_file, show_progress=False))
    finally:
        torch.set_num_threads(threads)


def write_outputs(args, setup, config, split, mode):
    from ray.tune import ExperimentAnalysis

    experiment = os.path.join(args.output, EXPERIMENT_NAME)
    analysis = ExperimentAnalysis(experiment, default_metric=setup.rank_metric, default_mode=mode)
    rows = trial_rows(analysis, setup)
    trials_csv = os.path.join(args.output, "trials.csv")
    write_trials_csv(trials_csv, rows, setup.metric, mode)
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"{len(rows)} trials: {statuses}; {trials_csv}")
    if any(row["status"] not in FINISHED_STATUSES for row in rows):
        print(f"search interrupted; continue it with: python run_recbole_mml.py tune --resume --output={args.output}")
        return 1
    best = _best_row(rows, setup.metric, mode)
    if best is None:
        print("no trial finished without error; see the error column of trials.csv", file=sys.stderr)
        return 1
    trial = next(t for t in analysis.trials if t.trial_id == best["trial_id"])
    best_yaml = os.path.join(args.output, "best.yaml")
    with open(best_yaml, "w", encoding="utf-8") as f:
        f.write(best_yaml_text(args, setup, config, best, trial.config, len(rows)))
    checkpoint = analysis.get_last_checkpoint(trial)
    if checkpoint is None:
        print(f"best trial {best['trial_id']} left no checkpoint to test; {best_yaml} retrains it", file=sys.stderr)
        return 1
    test_result = evaluate_checkpoint(_model_file(checkpoint.path), config, split, args.output)
    summary = {
        "model": setup.model, "dataset": setup.dataset, "trial_id": best["trial_id"],
        "valid_metric": setup.metric, "best_valid_score": best[setup.metric], "epochs": best["epochs"],
        "params": _plain(setup.space.decode(trial.config)), "test_result": _plain(test_result),
        "checkpoint": checkpoint.path,
    }
    with open(os.path.join(args.output, "best_test.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    print(f"best trial {best['trial_id']}: {setup.metric} = {best[setup.metric]} with {summary['params']}")
    print(f"test: {summary['test_result']}")
    print(f"best config: {best_yaml}; test result: {os.path.join(args.output, 'best_test.json')}")
    return 0


def main(argv=None):
    """``run_recbole_mml.py tune ...``: search, then write trials.csv, best.yaml and best_test.json."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    return run_search(args)


if __name__ == "__main__":
    from recbole_mml.cli import main as cli_main

    sys.exit(cli_main(["tune"] + sys.argv[1:]))
