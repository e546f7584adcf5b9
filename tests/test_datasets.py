"""Converters to RecBole benchmark files: exact pairs, a seeded per-user validation carve, and
counts on the real published splits equal to their documented statistics."""

import gzip
import os

import pandas as pd
import pytest

from recbole_mml.convert import (
    convert_lightgcn, convert_movielens, main, read_lightgcn, read_movielens, split_per_user,
)
from recbole_mml.errors import ConfigError

from conftest import ROOT

SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")  # staged beside the repository


def read_inter(path):
    with open(path, encoding="utf-8") as f:
        assert f.readline() == "user_id:token\titem_id:token\n"
    return pd.read_csv(path, sep="\t").set_axis(["user", "item"], axis=1)


def pairs(frame):
    return set(map(tuple, frame[["user", "item"]].to_numpy().tolist()))


@pytest.fixture
def lightgcn_dir(tmp_path):
    """Two users with 10 and 3 train items; test as published; train gzip-compressed, test plain."""
    src = tmp_path / "src"
    src.mkdir()
    with gzip.open(src / "train.txt.gz", "wt") as f:
        f.write("0 " + " ".join(str(i) for i in range(10)) + "\n1 3 7 5\n")
    (src / "test.txt").write_text("0 11 12\n1 10\n")
    return src


def test_lightgcn_conversion_keeps_test_and_carves_valid_from_train(lightgcn_dir, tmp_path):
    stats = convert_lightgcn(str(lightgcn_dir), str(tmp_path / "out"), "toy", valid_fraction=0.1, seed=7)
    assert (stats["users"], stats["items"], stats["train"], stats["test"]) == (2, 13, 13, 3)
    folder = tmp_path / "out" / "toy"
    full, train, valid, test = (read_inter(folder / f"toy.{p}.inter") for p in ("fulltrain", "train", "valid", "test"))
    assert pairs(test) == {(0, 11), (0, 12), (1, 10)}
    assert pairs(full) == {(0, i) for i in range(10)} | {(1, 3), (1, 7), (1, 5)}
    # valid is a disjoint part of train: round(0.1 * 10) = 1 for user 0, round(0.3) = 0 for user 1
    assert pairs(train) | pairs(valid) == pairs(full) and not pairs(train) & pairs(valid)
    assert valid["user"].tolist() == [0]


def test_valid_carve_is_seeded_and_leaves_min_train(tmp_path):
    frame = pd.DataFrame({"user": [0] * 20 + [1] * 2, "item": list(range(20)) + [0, 1]})
    kept_a, out_a = split_per_user(frame, 0.5, seed=1)
    kept_b, out_b = split_per_user(frame, 0.5, seed=1)
    _, out_c = split_per_user(frame, 0.5, seed=2)
    assert out_a.equals(out_b) and not out_a.equals(out_c)
    assert out_a.groupby("user").size().to_dict() == {0: 10, 1: 1}
    _, out = split_per_user(frame, 0.9, seed=1, min_keep=1)
    assert out.groupby("user").size().to_dict() == {0: 18, 1: 1}  # user 1 keeps one of two


def test_no_valid_writes_only_fulltrain_and_test(lightgcn_dir, tmp_path):
    assert main(["lightgcn", str(lightgcn_dir), "--name", "toy", "--out", str(tmp_path / "o"), "--no-valid"]) == 0
    assert sorted(os.listdir(tmp_path / "o" / "toy")) == ["toy.fulltrain.inter", "toy.test.inter"]


def test_malformed_line_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "train.txt"
    bad.write_text("0 1 2\n1 3 x4\n")
    with pytest.raises(ConfigError, match=r"train\.txt, line 2: .*'x4'"):
        read_lightgcn(str(bad))
    (tmp_path / "test.txt").write_text("0 5\n-1 2\n")
    assert main(["lightgcn", str(tmp_path), "--name", "t", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "train.txt, line 2" in err and err.count("\n") == 1


def test_movielens_ratings_threshold_and_split(tmp_path):
    ratings = tmp_path / "ratings.dat"
    lines = [f"1::{m}::{5 if m % 2 else 2}::97830{m}" for m in range(1, 21)] + ["2::1::4::1", "2::2::5::2"]
    ratings.write_text("\n".join(lines) + "\n")
    assert len(read_movielens(str(ratings), min_rating=4)) == 12
    stats = convert_movielens(str(ratings), str(tmp_path / "o"), "ml", test_fraction=0.2, min_rating=4)
    assert (stats["users"], stats["train"], stats["test"]) == (2, 10, 2)  # user 1: 10 -> 8 + 2, user 2: round(0.4) = 0 held out
    (tmp_path / "bad.dat").write_text("1::2::5::3\n1::2::five::3\n")
    with pytest.raises(ConfigError, match=r"bad\.dat, line 2"):
        read_movielens(str(tmp_path / "bad.dat"))


# (folder, users, items, train, test) from shared/data/README.md
PUBLISHED = [
    ("gowalla", 29_858, 40_981, 810_128, 217_242),
    ("yelp2018", 31_668, 38_048, 1_237_259, 324_147),
    ("ml-1m-implicit", 6_040, 3_706, 800_167, 200_042),
]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="real data not staged on this machine")
@pytest.mark.parametrize("folder,users,items,train,test", PUBLISHED)
def test_real_splits_match_published_statistics(tmp_path, folder, users, items, train, test):
    stats = convert_lightgcn(os.path.join(SHARED_DATA, folder), str(tmp_path), folder, valid_fraction=0.1)
    assert (stats["users"], stats["items"], stats["train"], stats["test"]) == (users, items, train, test)
    assert stats["train_carved"] + stats["valid_carved"] == train
    out = tmp_path / folder
    assert sum(1 for _ in open(out / f"{folder}.test.inter")) == test + 1  # + header
    assert sum(1 for _ in open(out / f"{folder}.fulltrain.inter")) == train + 1
