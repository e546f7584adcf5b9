"""Checks on a dataset's atomic files before RecBole loads them.

RecBole tries to download any dataset whose folder is missing; recbole_mml refuses instead and
says where it looked, and refuses empty or header-less atomic files with the file's name.
"""

import os

from recbole_mml.errors import ConfigError


def atomic_files(config):
    """The interaction files RecBole will read for this config (benchmark parts or one .inter)."""
    path, name = config["data_path"], config["dataset"]
    parts = config["benchmark_filename"]
    if parts:
        return [os.path.join(path, f"{name}.{part}.inter") for part in parts]
    return [os.path.join(path, f"{name}.inter")]


def check_atomic_file(path, field_separator="\t"):
    """Raise ConfigError unless ``path`` has a ``name:type`` header and at least one data row."""
    with open(path, "r", encoding="utf-8") as f:
        header = f.readline().rstrip("\n")
        first_row = f.readline()
    fields = header.split(field_separator) if header else []
    if not fields or not all(":" in field and field.split(":", 1)[0] for field in fields):
        raise ConfigError(
            f"atomic file '{path}': line 1 must be a header of name:type fields separated by "
            f"{field_separator!r}, got {header[:80]!r}"
        )
    if not first_row.strip():
        raise ConfigError(f"atomic file '{path}': no data rows after the header")


def check_dataset_files(config):
    """Refuse a dataset whose interaction files are missing, empty or malformed (no download)."""
    files = atomic_files(config)
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise ConfigError(
            f"dataset '{config['dataset']}': no atomic file at {os.path.abspath(missing[0])} "
            f"(data_path={config['data_path']!r}); convert your data first, e.g. "
            f"python -m recbole_mml.convert --help"
        )
    for path in dict.fromkeys(files):
        check_atomic_file(path, config["field_separator"])


def check_no_cold_users(config, train_data, *eval_parts):
    """Refuse users that appear in valid/test but have no training interaction.

    Their scores would come from untrained vectors and quietly drag every metric down; a benchmark
    split that has them is almost always a conversion mistake. ``allow_cold_users: True`` accepts them.
    """
    if config["allow_cold_users"]:
        return
    uid = config["USER_ID_FIELD"]
    trained = set(train_data.dataset.inter_feat[uid].numpy().tolist())
    for name, part in zip(("valid", "test"), eval_parts):
        if part is None:
            continue
        cold = sorted(set(part.dataset.inter_feat[uid].numpy().tolist()) - trained)
        if cold:
            tokens = part.dataset.id2token(uid, cold[:5]).tolist()
            raise ConfigError(
                f"dataset '{config['dataset']}': {len(cold)} users of the {name} part have no training "
                f"interactions (e.g. user_id {tokens}); fix the split or set allow_cold_users=True"
            )
