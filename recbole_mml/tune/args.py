"""The command line of ``run_recbole_mml.py tune``, and the arguments a resumed search reads back.

A search saves its arguments in ``--output`` before Ray starts, so ``--resume --output=DIR`` needs
nothing else and continues the same search even if the search-space file changed meanwhile.
"""

import argparse
import json
import os
import shutil

from recbole_mml.config import parse_overrides
from recbole_mml.errors import ConfigError

STATE_FILE = "search.json"
SCHEDULERS = ("asha", "fifo")
SEARCHERS = ("random", "grid", "optuna")


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
        return _saved_args(args)
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


def _saved_args(args):
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


def save_args(args):
    """Write the search's arguments (and a copy of its space file) to ``--output``."""
    os.makedirs(args.output, exist_ok=True)
    state = {k: v for k, v in vars(args).items() if k not in ("resume", "debug")}
    space_copy = os.path.join(args.output, "search_space" + os.path.splitext(args.params_file)[1])
    if os.path.abspath(args.params_file) != space_copy:
        shutil.copyfile(args.params_file, space_copy)
    state["params_file"] = space_copy  # the search resumes over this copy, even if the original changes
    with open(os.path.join(args.output, STATE_FILE), "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2)


def resume_command(output):
    """The command that continues the search in ``output``."""
    return f"python run_recbole_mml.py tune --resume --output={output}"
