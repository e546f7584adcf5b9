"""recbole_mml: the Multi-Margin (Cosine) Loss for RecBole, and fair, fast benchmarks against RecBole's models.

Importing the package loads nothing: ``import recbole_mml.loss`` needs torch only. The names below
are loaded on first use; the entry points that use RecBole (the command line,
:mod:`recbole_mml.quick_start`, :mod:`recbole_mml.config`, :mod:`recbole_mml.model`) apply the
fixes RecBole 1.2.1 needs on today's libraries (:mod:`recbole_mml.compat`).
"""

__version__ = "0.1.0"
__all__ = ["Config", "MultiMarginCosineLoss", "get_model", "get_trainer"]


def __getattr__(name):
    if name == "Config":
        from recbole_mml.config import Config

        return Config
    if name == "MultiMarginCosineLoss":
        from recbole_mml.loss import MultiMarginCosineLoss

        return MultiMarginCosineLoss
    if name in ("get_model", "get_trainer"):
        from recbole_mml import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'recbole_mml' has no attribute {name!r}")
