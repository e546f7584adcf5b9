"""``python -m recbole_mml.benchmark --worker RUN.json ROW.json``: one run in a fresh process (what
the benchmark command starts per run); any other arguments are those of ``run_recbole_mml.py benchmark``."""

import sys

from recbole_mml.benchmark.execute import worker_main
from recbole_mml.cli import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        sys.exit(worker_main(*sys.argv[2:4]))
    sys.exit(main(["benchmark"] + sys.argv[1:]))
