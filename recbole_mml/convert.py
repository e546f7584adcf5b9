"""Converters from published splits to RecBole atomic benchmark files.

    python -m recbole_mml.convert lightgcn ../shared/data/gowalla --name gowalla
    python -m recbole_mml.convert movielens ratings.dat --name ml-1m --min-rating 4

The published test split is kept as it is: ``<name>.test.inter`` holds exactly the source's test
pairs. RecBole reads ``<data_path>/<name>/<name>.<part>.inter`` for each part of
``benchmark_filename``; the converter writes four parts so both evaluation protocols work from one
conversion:

- ``fulltrain``: the published training pairs, all of them;
- ``train`` and ``valid``: the same pairs, with a seeded share of each user's items moved to
  ``valid`` (at least ``min_train`` items stay in ``train``);
- ``test``: the published test pairs.

``[train, valid, test]`` selects models without looking at the test set; ``[fulltrain, test, test]``
is the LightGCN / SimpleX protocol (standard training set, test reused as validation).
"""

import argparse
import gzip
import os
import sys

import numpy as np
import pandas as pd

from recbole_mml.errors import ConfigError

HEADER = "user_id:token\titem_id:token\n"
PARTS = ("fulltrain", "train", "valid", "test")


def _open_text(path):
    """Plain or gzip-compressed text, chosen by the file's first two bytes."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, "r", encoding="utf-8")


def find_file(folder, stem):
    """``<folder>/<stem>.txt`` or ``<stem>.txt.gz``; ConfigError naming both when neither exists."""
    for name in (f"{stem}.txt", f"{stem}.txt.gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise ConfigError(f"no {stem}.txt or {stem}.txt.gz in '{folder}'")


def read_lightgcn(path):
    """Pairs of a LightGCN-format file (``user item item ...`` per line) as a (user, item) int64 frame.

    A line with a non-integer or negative id raises ConfigError naming the file and line, since a
    silently skipped line would shift every count the benchmark is checked against. Blank lines and
    a user with no items are allowed (the published ml-1m test file lacks one user).
    """
    users, items = [], []
    with _open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                ids = [int(x) for x in fields]
            except ValueError:
                bad = next(x for x in fields if not x.lstrip("-").isdigit())
                raise ConfigError(f"{path}, line {lineno}: expected integer ids 'user item item ...', got {bad!r}") from None
            if min(ids) < 0:
                raise ConfigError(f"{path}, line {lineno}: negative id {min(ids)}")
            users.append(np.full(len(ids) - 1, ids[0], dtype=np.int64))
            items.append(np.asarray(ids[1:], dtype=np.int64))
    if not users:
        raise ConfigError(f"{path}: no data lines")
    return pd.DataFrame({"user": np.concatenate(users), "item": np.concatenate(items)})


def read_movielens(path, sep="::", min_rating=None):
    """Pairs of a MovieLens ratings file ``UserID::MovieID::Rating::Timestamp`` (ratings >= min_rating).

    Duplicate (user, movie) lines are kept once; a malformed line raises ConfigError with its number.
    """
    rows = []
    with _open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split(sep)
            try:
                user, item, rating = int(fields[0]), int(fields[1]), float(fields[2])
                if len(fields) != 4:
                    raise ValueError
                int(fields[3])
            except (ValueError, IndexError):
                raise ConfigError(
                    f"{path}, line {lineno}: expected 'UserID{sep}MovieID{sep}Rating{sep}Timestamp', got {line.strip()[:80]!r}"
                ) from None
            rows.append((user, item, rating))
    if not rows:
        raise ConfigError(f"{path}: no data lines")
    frame = pd.DataFrame(rows, columns=["user", "item", "rating"])
    if min_rating is not None:
        frame = frame[frame["rating"] >= min_rating]
    return frame[["user", "item"]].drop_duplicates().reset_index(drop=True)


def split_per_user(pairs, fraction, seed, min_keep=1):
    """``(kept, held_out)``: a seeded share of each user's pairs moved out, at least ``min_keep`` kept.

    Each user holds out ``round(fraction * n)`` of their n pairs (half rounds up), capped at
    ``n - min_keep``; the choice is a seeded permutation, so a conversion repeats exactly.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"fraction: expected a value in [0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    shuffled = pairs.iloc[order].reset_index(drop=True)
    rank = shuffled.groupby("user").cumcount().to_numpy()
    counts = shuffled.groupby("user")["user"].transform("size").to_numpy()
    n_out = np.minimum(np.floor(fraction * counts + 0.5), np.maximum(counts - min_keep, 0))
    out = rank < n_out
    restore = lambda frame: frame.sort_values(["user", "item"], kind="stable").reset_index(drop=True)  # noqa: E731
    return restore(shuffled[~out]), restore(shuffled[out])


def write_inter(pairs, path):
    """An atomic ``.inter`` file with the header ``user_id:token<TAB>item_id:token``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(HEADER)
        pairs[["user", "item"]].to_csv(f, sep="\t", header=False, index=False)


def statistics(train, test):
    """Counts comparable with a published data set's: users, items, train and test pairs."""
    both = pd.concat([train, test])
    return {
        "users": int(both["user"].nunique()),
        "items": int(both["item"].nunique()),
        "train": len(train),
        "test": len(test),
        "total": len(both),
    }


def write_benchmark(train, test, out_dir, name, valid_fraction=0.1, seed=2020, min_train=1):
    """Write ``<out_dir>/<name>/<name>.{fulltrain,train,valid,test}.inter``; statistics and paths.

    ``valid_fraction=0`` writes only ``fulltrain`` and ``test`` (for ``[fulltrain, test, test]``).
    """
    folder = os.path.join(out_dir, name)
    parts = {"fulltrain": train, "test": test}
    if valid_fraction > 0:
        parts["train"], parts["valid"] = split_per_user(train, valid_fraction, seed, min_train)
    stats = statistics(train, test)
    stats["files"] = {}
    for part, pairs in parts.items():
        path = os.path.join(folder, f"{name}.{part}.inter")
        write_inter(pairs, path)
        stats["files"][part] = path
        if part in ("train", "valid"):
            stats[part + "_carved"] = len(pairs)
    return stats


def convert_lightgcn(src, out_dir, name, valid_fraction=0.1, seed=2020, min_train=1, id_offset=0):
    """LightGCN-format ``train.txt(.gz)`` / ``test.txt(.gz)`` in ``src`` -> benchmark files.

    ``id_offset`` is added to every id (1 turns ml-1m-implicit's ids back into MovieLens ids).
    """
    train = read_lightgcn(find_file(src, "train")) + id_offset
    test = read_lightgcn(find_file(src, "test")) + id_offset
    return write_benchmark(train, test, out_dir, name, valid_fraction, seed, min_train)


def convert_movielens(ratings, out_dir, name, test_fraction=0.2, valid_fraction=0.1, seed=2020,
                      min_rating=None, sep="::"):
    """A MovieLens ratings file -> benchmark files; test is a seeded per-user share (no published split)."""
    pairs = read_movielens(ratings, sep=sep, min_rating=min_rating)
    train, test = split_per_user(pairs, test_fraction, seed, min_keep=1)
    return write_benchmark(train, test, out_dir, name, valid_fraction, seed + 1, 1)


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m recbole_mml.convert",
        description="Convert published splits into RecBole benchmark files <out>/<name>/<name>.<part>.inter",
    )
    sub = parser.add_subparsers(dest="format", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", required=True, help="data set name (RecBole's --dataset)")
    common.add_argument("--out", default="dataset", help="RecBole data_path (default: dataset)")
    common.add_argument("--valid-fraction", type=float, default=0.1,
                        help="share of each user's train items moved to valid (default 0.1)")
    common.add_argument("--no-valid", action="store_true", help="write only fulltrain and test")
    common.add_argument("--seed", type=int, default=2020, help="seed of the per-user splits")
    common.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    lightgcn = sub.add_parser("lightgcn", parents=[common], help="folder with train.txt(.gz) and test.txt(.gz)")
    lightgcn.add_argument("src", help="folder holding train.txt(.gz) and test.txt(.gz)")
    lightgcn.add_argument("--id-offset", type=int, default=0, help="added to every id (ml-1m-implicit: 1)")
    movielens = sub.add_parser("movielens", parents=[common], help="ratings file UserID::MovieID::Rating::Timestamp")
    movielens.add_argument("src", help="ratings file (plain or .gz)")
    movielens.add_argument("--test-fraction", type=float, default=0.2, help="per-user test share (default 0.2)")
    movielens.add_argument("--min-rating", type=float, default=None, help="keep ratings >= this (default: all)")
    movielens.add_argument("--sep", default="::", help="field separator (default ::)")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    valid_fraction = 0.0 if args.no_valid else args.valid_fraction
    try:
        if args.format == "lightgcn":
            stats = convert_lightgcn(args.src, args.out, args.name, valid_fraction, args.seed, id_offset=args.id_offset)
        else:
            stats = convert_movielens(args.src, args.out, args.name, args.test_fraction, valid_fraction,
                                      args.seed, args.min_rating, args.sep)
    except ConfigError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    files = stats.pop("files")
    print(", ".join(f"{k}: {v:,}" for k, v in stats.items()))
    for part, path in files.items():
        print(f"  {part:9s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
