"""Checks on a dataset's atomic files before RecBole loads them.

RecBole tries to download any dataset whose folder is missing; recbole_mml refuses instead and
says where it looked. Every atomic file is read once before RecBole loads it, so a malformed file is
refused with its name and line, instead of a traceback from inside pandas or rows padded or cut.
"""

import os
from logging import getLogger

from recbole_mml.errors import ConfigError


def atomic_files(config):
    """The interaction files RecBole will read for this config (benchmark parts or one .inter)."""
    path, name = config["data_path"], config["dataset"]
    parts = config["benchmark_filename"]
    if parts:
        return [os.path.join(path, f"{name}.{part}.inter") for part in parts]
    return [os.path.join(path, f"{name}.inter")]


FEATURE_TYPES = ("token", "float", "token_seq", "float_seq")


def is_loaded(config, source, field):
    """Whether RecBole loads ``field`` of the ``source`` file ('inter', 'user', 'item'), as its
    ``Dataset._get_load_and_unload_col`` decides from ``load_col`` and ``unload_col``."""
    load_col, unload_col = config["load_col"], config["unload_col"]
    loaded = load_col is None or load_col.get(source) == "*" or field in (load_col.get(source) or ())
    return loaded and not (unload_col and field in (unload_col.get(source) or ()))


def read_header(path, field_separator="\t", encoding="utf-8"):
    """The ``(name, type)`` fields of line 1; ConfigError, naming the file, for a header RecBole would misread."""
    with open(path, "r", encoding=encoding, errors="replace") as f:  # bad bytes: reported with their line later
        header = f.readline().rstrip("\n")
        first_row = f.readline()
    if header.startswith("\ufeff"):
        raise ConfigError(
            f"atomic file '{path}': starts with a UTF-8 byte-order mark; save it without one (or set encoding=utf-8-sig)"
        )
    fields = header.split(field_separator) if header else []
    if not fields or not all(":" in field and field.split(":", 1)[0] for field in fields):
        raise ConfigError(
            f"atomic file '{path}': line 1 must be a header of name:type fields separated by "
            f"{field_separator!r}, got {header[:80]!r}"
        )
    fields = [tuple(field.split(":", 1)) for field in fields]
    for name, ftype in fields:
        if ftype not in FEATURE_TYPES:
            raise ConfigError(
                f"atomic file '{path}': line 1, field {name!r} has type {ftype!r}; expected one of {FEATURE_TYPES}"
            )
    if not first_row.strip():
        raise ConfigError(f"atomic file '{path}': no data rows after the header")
    return fields


class FileScan:
    """What one pass over an atomic file found: its distinct (user, item) pairs and its duplicate rows."""

    def __init__(self):
        self.pairs = set()
        self.duplicates = 0
        self.first_duplicate_line = None


def _first_undecodable_line(path, encoding):
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as e:
                return lineno, raw[e.start:e.start + 1]
    return None, b""


def scan_atomic_file(path, config, source, id_fields=None):
    """Read every row once before RecBole does, refusing what it would crash on or silently misread.

    Refused with the file and line: a row with more or fewer fields than the header (RecBole pads or
    cuts it, or fails inside pandas), bytes that are not in ``encoding``, a value of a loaded float
    field that is not a number. With ``id_fields`` (user, item): the pairs, and how many rows repeat one.
    """
    sep, encoding = config["field_separator"], config["encoding"] or "utf-8"
    fields = read_header(path, sep, encoding)
    names = [name for name, _ in fields]
    seq_separator = config["seq_separator"] or " "
    floats = [(i, f"{name}:{ftype}", ftype == "float_seq") for i, (name, ftype) in enumerate(fields)
              if ftype in ("float", "float_seq") and is_loaded(config, source, name)]
    scan = FileScan()
    if id_fields is not None:
        for field in id_fields:
            if field not in names:
                raise ConfigError(
                    f"atomic file '{path}': no field {field!r} in the header (fields: {names}); "
                    f"expected the config's USER_ID_FIELD and ITEM_ID_FIELD"
                )
        uid, iid = names.index(id_fields[0]), names.index(id_fields[1])
    try:
        with open(path, "r", encoding=encoding) as f:
            f.readline()
            for lineno, line in enumerate(f, 2):
                line = line.rstrip("\n")
                if not line:
                    continue  # pandas skips blank lines
                values = line.split(sep)
                if len(values) != len(fields):
                    raise ConfigError(
                        f"atomic file '{path}': line {lineno} has {len(values)} fields, the header has {len(fields)}"
                    )
                for i, field, is_seq in floats:
                    for value in values[i].split(seq_separator) if is_seq else (values[i],):
                        try:
                            float(value) if value.strip() else None  # an empty cell is a missing value
                        except ValueError:
                            raise ConfigError(
                                f"atomic file '{path}': line {lineno}, field {field}: expected a number, got {value[:40]!r}"
                            ) from None
                if id_fields is not None:
                    pair = (values[uid], values[iid])
                    if pair in scan.pairs:
                        scan.duplicates += 1
                        scan.first_duplicate_line = scan.first_duplicate_line or lineno
                    else:
                        scan.pairs.add(pair)
    except UnicodeDecodeError:
        lineno, byte = _first_undecodable_line(path, encoding)
        raise ConfigError(
            f"atomic file '{path}': line {lineno} is not valid {encoding} (byte {byte!r}); "
            f"convert the file, or set encoding to the one it was written in"
        ) from None
    return scan


def _duplicate_action(config):
    if config["benchmark_filename"]:
        return "kept: RecBole does not filter benchmark files (remove them from the file)"
    if config["rm_dup_inter"] is None:
        return "kept (set rm_dup_inter=first or rm_dup_inter=last to drop them)"
    return f"dropped: rm_dup_inter={config['rm_dup_inter']} keeps one of each"


def check_users_and_items(config, pairs, where):
    """At least two users, and none that interacted with every item: RecBole's samplers fail on a
    user with no item left to sample (a single user has every item)."""
    items_of = {}
    for user, item in pairs:
        items_of.setdefault(user, set()).add(item)
    if len(items_of) < 2:
        raise ConfigError(
            f"dataset '{config['dataset']}': {len(items_of)} user in {where}; recommendation needs at least 2"
        )
    n_items = len({item for _, item in pairs})
    for user, items in items_of.items():
        if len(items) == n_items:
            raise ConfigError(
                f"dataset '{config['dataset']}': {config['USER_ID_FIELD']} {user!r} interacted with all {n_items} "
                f"items of {where}, so no item is left to sample as its negative; remove that user"
            )


def check_dataset_files(config):
    """Refuse a dataset whose atomic files are missing, unreadable or malformed (no download) before
    RecBole loads them, and warn in one line per file about duplicate (user, item) rows."""
    files = atomic_files(config)
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise ConfigError(
            f"dataset '{config['dataset']}': no atomic file at {os.path.abspath(missing[0])} "
            f"(data_path={config['data_path']!r}); convert your data first, e.g. "
            f"python -m recbole_mml.convert --help"
        )
    id_fields = (config["USER_ID_FIELD"], config["ITEM_ID_FIELD"])
    load_col = config["load_col"]
    features = [os.path.join(config["data_path"], f"{config['dataset']}.{source}") for source in ("user", "item")
                if load_col is None or source in load_col]  # RecBole reads no field of a source load_col omits
    pairs = set()
    for path in dict.fromkeys(files + [p for p in features if os.path.exists(p)]):
        source = "inter" if path in files else path.rsplit(".", 1)[1]
        try:
            scan = scan_atomic_file(path, config, source, id_fields if source == "inter" else None)
        except OSError as e:
            raise ConfigError(f"atomic file '{path}': cannot be read ({e.strerror or e})") from None
        pairs |= scan.pairs
        if scan.duplicates:
            getLogger().warning(
                f"atomic file '{path}': {scan.duplicates} duplicate ({id_fields[0]}, {id_fields[1]}) rows, "
                f"the first at line {scan.first_duplicate_line}; {_duplicate_action(config)}"
            )
    where = os.path.basename(files[0]) if len(files) == 1 else "its interaction files"
    check_users_and_items(config, pairs, where)


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
