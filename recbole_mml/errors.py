"""recbole_mml's exceptions and warnings, in one module every layer may import (it imports nothing)."""


class ConfigError(ValueError):
    """Bad input (config key or value, model, dataset, file): the message names it and what was expected.

    The command line prints it as one line, no traceback.
    """


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names epoch and batch."""


class Interrupted(Exception):
    """A command stopped by Ctrl+C or SIGTERM; the message says how to go on. The command line prints
    it as one line, exit code 1."""


class SearchInterrupted(Interrupted):
    """A search stopped before every trial ended (Ctrl+C, SIGTERM); the message says how to resume it."""


class BenchmarkInterrupted(Interrupted):
    """A benchmark stopped between or during its runs (Ctrl+C, SIGTERM); its finished rows are kept."""


class RecBoleVersionWarning(UserWarning):
    """The installed RecBole is not the version recbole_mml's compatibility fixes were written for."""
