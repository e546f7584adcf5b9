"""The one exception type for input a user can fix: the CLI prints it as one line, no traceback."""


class ConfigError(ValueError):
    """Bad input (config key or value, model, dataset, file): the message names it and what was expected."""
