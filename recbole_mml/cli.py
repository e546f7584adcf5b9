"""Command line of run_recbole_mml.py: RecBole's run_recbole.py flags, plus tune and benchmark modes.

    python run_recbole_mml.py --model=MMLMF --dataset=ml-100k [--config_files="a.yaml b.yaml"] [--key=value ...]
    python run_recbole_mml.py tune ...        (see recbole_mml.tune)
    python run_recbole_mml.py benchmark ...   (see recbole_mml.benchmark)

Bad input ends with one line on stderr and exit code 2; ``--debug`` shows the traceback instead.
An interrupted search or benchmark ends with one line saying how to go on, and exit code 1.
"""

import argparse
import sys

from recbole_mml.errors import ConfigError, Interrupted, NonFiniteLossError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 1


def train_parser():
    parser = argparse.ArgumentParser(
        prog="run_recbole_mml.py",
        description="Train and test a recbole_mml or RecBole model; any other --key=value overrides a config key.",
    )
    parser.add_argument("--model", "-m", type=str, default="MMLMF", help="model name (recbole_mml's or RecBole's)")
    parser.add_argument("--dataset", "-d", type=str, default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="config files, separated by spaces")
    parser.add_argument("--nproc", type=int, default=1, help="processes (torch.distributed)")
    parser.add_argument("--ip", type=str, default="localhost", help="ip of the master node")
    parser.add_argument("--port", type=str, default="5678", help="port of the master node")
    parser.add_argument("--world_size", type=int, default=-1, help="total number of processes")
    parser.add_argument("--group_offset", type=int, default=0, help="global rank offset of this group")
    parser.add_argument("--resume", type=str, default=None, help="checkpoint (.pth) to resume training from")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return parser


def train_main(argv):
    args, overrides = train_parser().parse_known_args(argv)
    from recbole_mml.quick_start import run

    config_files = args.config_files.split() if args.config_files else None
    run(
        args.model, args.dataset, config_file_list=config_files, cmd_args=overrides, resume=args.resume,
        nproc=args.nproc, world_size=args.world_size, ip=args.ip, port=args.port, group_offset=args.group_offset,
    )
    return 0


def _mode(argv):
    if argv and argv[0] in ("tune", "benchmark", "train"):
        return argv[0], argv[1:]
    return "train", argv


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    mode, rest = _mode(argv)
    debug = "--debug" in rest
    from recbole_mml import compat

    if not debug:
        compat.quiet_recbole_warnings()
    compat.apply()

    try:
        if mode == "tune":
            from recbole_mml.tune.driver import main as tune_main

            return tune_main(rest)
        if mode == "benchmark":
            from recbole_mml.benchmark.runner import main as benchmark_main

            return benchmark_main(rest)
        return train_main(rest)
    except (ConfigError, NonFiniteLossError) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Interrupted as e:
        print(e, file=sys.stderr)
        return EXIT_INTERRUPTED
