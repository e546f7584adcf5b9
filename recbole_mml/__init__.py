"""recbole_mml: the Multi-Margin (Cosine) Loss for RecBole, and fair, fast benchmarks against RecBole's models.

Importing the package makes RecBole 1.2.1 work on today's numpy, pandas, scipy, torch and Ray
(see :mod:`recbole_mml.compat`).
"""

from recbole_mml import compat

compat.apply()

from recbole_mml.config import Config  # noqa: E402
from recbole_mml.loss import MultiMarginCosineLoss  # noqa: E402
from recbole_mml.registry import get_model, get_trainer  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Config", "MultiMarginCosineLoss", "get_model", "get_trainer", "compat"]
