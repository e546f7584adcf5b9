"""Train and test any recbole_mml or RecBole model: ``python run_recbole_mml.py --model=MMLMF --dataset=ml-100k``."""

import sys

from recbole_mml.cli import main

if __name__ == "__main__":
    sys.exit(main())
