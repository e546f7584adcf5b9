"""RecBole's names for the settings of recbole_mml's contrastive models, read as recbole_mml's.

A RecBole SimpleX yaml ports unchanged: its ``negative_weight`` is ``neg_weight``, its ``margin``
is ``ccl_margin`` (the one margin of ``loss_type: CCL``; with MML a lone ``margin`` stays an
unknown key, whose closest known key is ``margins``), and ``train_neg_sample_args`` (N negatives
per positive from a distribution) becomes the in-model sampler's ``num_negatives``,
``neg_distribution`` and ``neg_alpha``, so RecBole's loader keeps yielding positives only.
"""

from logging import getLogger

from recbole_mml.errors import ConfigError

SIMPLEX_KEYS = {"negative_weight": "neg_weight"}
CCL_KEYS = {"margin": "ccl_margin"}
NEG_SAMPLE_KEYS = {"sample_num": "num_negatives", "distribution": "neg_distribution", "alpha": "neg_alpha"}


def _negative_sampling(args):
    """``{our key: (RecBole's name, value)}`` for a given ``train_neg_sample_args``."""
    if args is None or args == "None":
        return {}
    if not isinstance(args, dict):
        raise ConfigError(f"train_neg_sample_args: expected a mapping such as {{sample_num: 100}}, got {args!r}")
    if args.get("dynamic"):
        raise ConfigError("train_neg_sample_args: dynamic (hard) negative sampling is not supported by "
                          "recbole_mml's models; they draw num_negatives from neg_distribution")
    if args.get("distribution", "uniform") in (None, "none", "None"):
        return {}
    args = {"sample_num": 1, **args}  # RecBole's default: one negative (a distribution alone is 1 negative)
    return {ours: (f"train_neg_sample_args.{theirs}", args[theirs])
            for theirs, ours in NEG_SAMPLE_KEYS.items() if theirs in args}


def read_recbole_keys(given, defaults):
    """``given`` (the user's keys) with RecBole's names replaced by ours, and one notice line.

    Refuses a RecBole name and ours given with different values.
    """
    given = dict(given)
    aliases = dict(SIMPLEX_KEYS)
    if given.get("loss_type", defaults.get("loss_type")) == "CCL":
        aliases.update(CCL_KEYS)
    mapped = {ours: (theirs, given.pop(theirs)) for theirs, ours in aliases.items() if theirs in given}
    mapped.update(_negative_sampling(given.pop("train_neg_sample_args", None)))
    for ours, (theirs, value) in mapped.items():
        if ours in given and given[ours] != value:
            raise ConfigError(f"'{theirs}' (RecBole's name for '{ours}') is {value!r} but '{ours}' is {given[ours]!r}")
        given[ours] = value
    if mapped:
        read = ", ".join(f"{theirs} as {ours} = {value!r}" for ours, (theirs, value) in mapped.items())
        getLogger().warning(f"RecBole's config keys read as recbole_mml's: {read}")
    return given
