"""``python -m recbole_mml.tune ...``: the same as ``run_recbole_mml.py tune ...``."""

import sys

from recbole_mml.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune"] + sys.argv[1:]))
