"""Command line of the converters in recbole_mml.datasets: ``python -m dataset.convert --help``."""

import sys

import recbole_mml  # noqa: F401  (compatibility fixes)
from recbole_mml.datasets import main

if __name__ == "__main__":
    sys.exit(main())
