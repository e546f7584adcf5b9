"""Fault injection through the command line: every bad input ends in one line and exit code 2 before any
data is loaded or any epoch trained where the input allows it, and no checkpoint is lost or silently wrong."""

import glob
import hashlib
import logging
import os

import pytest
import torch

import recbole_mml.quick_start as quick_start
from recbole_mml.cli import main
from recbole_mml.checkpoint import load_checkpoint
from recbole_mml.errors import ConfigError
from recbole_mml.sampler import NegativeSampler

HEADER = "user_id:token\titem_id:token\trating:float\n"
ROWS = [(u, (u * 7 + k * 3) % 60 + 1) for u in range(1, 41) for k in range(12)]  # 40 users, 60 items, no repeats


def rows_text(rows):
    return "".join(f"{u}\t{i}\t4.0\n" for u, i in rows)


def write_dataset(data, name, content, part=None):
    """``data/<name>/<name>[.<part>].inter`` with ``content`` (str or bytes)."""
    folder = data / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"{name}.{part}.inter" if part else f"{name}.inter")
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.fixture
def data(workdir):
    folder = workdir / "data"
    write_dataset(folder, "tiny", HEADER + rows_text(ROWS))
    return folder


def args_for(data, *extra, dataset="tiny"):
    """CLI arguments for a quick run on ``data/<dataset>``; ``extra`` replaces the defaults of its keys."""
    defaults = ["--model=MMLMF", f"--dataset={dataset}", f"--data_path={data}", "--num_negatives=5", "--epochs=2",
                "--show_progress=False", "--checkpoint_dir=ck"]
    given = {arg.split("=", 1)[0] for arg in extra}
    return [arg for arg in defaults if arg.split("=", 1)[0] not in given] + list(extra)


@pytest.fixture
def no_data_loading(monkeypatch):
    """Fail the test if a dataset is loaded: the refusal must come first."""

    def tripwire(*args, **kwargs):
        raise AssertionError("data was loaded before the refusal")

    monkeypatch.setattr(quick_start, "create_dataset", tripwire)


def refused(capsys, argv, message):
    """Run the CLI, expect exit code 2 and exactly one stderr line that contains ``message``."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    return err[0]


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def messages(caplog, text):
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# 1. A finished run's checkpoint is never rewritten; resuming it trains nothing and reports its results.

def test_resuming_a_finished_run_trains_nothing_and_leaves_its_checkpoint_as_it_is(data, caplog):
    caplog.set_level(logging.INFO)
    assert main(args_for(data)) == 0
    checkpoint, = glob.glob("ck/*.pth")
    first_test = messages(caplog, "test result")
    record = load_checkpoint(checkpoint)["recbole_mml_run"]
    assert record["finished"] and record["epochs"] == 2
    digest = sha256(checkpoint)
    for _ in range(2):
        caplog.clear()
        assert main(args_for(data, f"--resume={checkpoint}")) == 0
        assert messages(caplog, "is of a finished run (2 epochs): nothing to train")
        assert not messages(caplog, "training [time")  # no epoch trained
        assert messages(caplog, "test result") == first_test
        assert sha256(checkpoint) == digest
    assert glob.glob("ck/*.pth") == [checkpoint]

    caplog.clear()  # more epochs: trains on into a new file (as a 3-epoch run would), the finished one is kept
    assert main(args_for(data, f"--resume={checkpoint}", "--epochs=3")) == 0
    assert messages(caplog, "training on to 3 epochs") and messages(caplog, "epoch 2 training")
    longer_test = messages(caplog, "test result")
    assert sha256(checkpoint) == digest
    longer, = set(glob.glob("ck/*.pth")) - {checkpoint}
    assert load_checkpoint(longer)["recbole_mml_run"]["epochs"] == 3
    caplog.clear()
    assert main(args_for(data, "--epochs=3", "--checkpoint_dir=fresh")) == 0
    assert messages(caplog, "test result") == longer_test


# 2. Popularity sampling with a negative exponent: zero-count items are never drawn, the rest follow count ** alpha.

@pytest.mark.parametrize("alpha", [-1.0, 0.5])
def test_popularity_draws_follow_count_power_alpha_and_skip_unseen_items(alpha):
    counts = torch.tensor([0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 0.0])  # id 0 is padding; items 1 and 6 never trained
    sampler = NegativeSampler(7, 10, "popularity", "batch", item_counts=counts, alpha=alpha, seed=0)
    draws = sampler.draw((200_000,))
    frequency = torch.bincount(draws, minlength=7).double() / draws.numel()
    weights = torch.where(counts > 0, counts.clamp(min=1) ** alpha, torch.zeros_like(counts))
    weights[0] = 0
    assert frequency[1] == 0 and frequency[6] == 0 and frequency[0] == 0
    assert torch.allclose(frequency, weights.double() / weights.sum(), atol=0.005)
    with pytest.raises(ConfigError, match="num_negatives: 5 is more than the 4 items available"):
        NegativeSampler(7, 5, "popularity", "row", item_counts=counts, alpha=alpha, replacement=False)


def test_non_finite_neg_alpha_is_refused(data, capsys, no_data_loading):
    refused(capsys, args_for(data, "--neg_distribution=popularity", "--neg_alpha=1e999"),
            "neg_alpha: expected a finite number, got inf")


# 3. Two runs that start in the same second keep two checkpoints; an existing file is never replaced.

def test_runs_started_in_the_same_second_keep_their_own_checkpoints(data, monkeypatch):
    import recbole.trainer.trainer as recbole_trainer

    monkeypatch.setattr(recbole_trainer, "get_local_time", lambda: "Jan-01-2030_00-00-00")
    os.makedirs("ck")
    with open("ck/MMLMF-Jan-01-2030_00-00-00.pth", "wb") as f:
        f.write(b"another run's file")
    assert main(args_for(data, "--seed=1", "--epochs=1")) == 0
    assert main(args_for(data, "--seed=2", "--epochs=1")) == 0
    assert open("ck/MMLMF-Jan-01-2030_00-00-00.pth", "rb").read() == b"another run's file"
    assert load_checkpoint("ck/MMLMF-Jan-01-2030_00-00-00-2.pth")["config"]["seed"] == 1
    assert load_checkpoint("ck/MMLMF-Jan-01-2030_00-00-00-3.pth")["config"]["seed"] == 2


def test_a_new_checkpoint_appears_whole_or_not_at_all(workdir, monkeypatch):
    from recbole_mml.checkpoint import save_new_checkpoint

    assert save_new_checkpoint({"epoch": 0}, "ck/m.pth") == "ck/m.pth"
    assert save_new_checkpoint({"epoch": 1}, "ck/m.pth") == "ck/m-2.pth"
    assert load_checkpoint("ck/m.pth")["epoch"] == 0 and load_checkpoint("ck/m-2.pth")["epoch"] == 1

    def crash_mid_write(obj, f, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_new_checkpoint({"epoch": 2}, "ck/m.pth")
    assert sorted(os.listdir("ck")) == ["m-2.pth", "m.pth"]


# 4, 5, 9, 13, 14. Bad values are refused with the key, before any data is loaded.

@pytest.mark.parametrize("extra,message", [
    (["--epochs=0"], "epochs: expected an integer >= 1, got 0"),
    (["--epochs=-3"], "epochs: expected an integer >= 1, got -3"),
    (["--epochs=2.5"], "epochs: expected an integer >= 1, got 2.5"),
    (["--learning_rate=-1"], "learning_rate: expected a finite number > 0, got -1"),
    (["--train_batch_size=0"], "train_batch_size: expected an integer >= 1, got 0"),
    (["--num_negatives=1000000000", "--neg_sharing=batch"],
     "num_negatives: 1000000000 with neg_sharing=batch and train_batch_size=2048 needs at least"),
    (["--num_negatives=1000000000"], "num_negatives: 1000000000 with neg_sharing=row and train_batch_size=2048"),
    (["--valid_metric_bigger=False", "--valid_metric=MRR@10"],
     "valid_metric_bigger: False contradicts valid_metric MRR@10, for which bigger is better"),
    (["--benchmark_filename=train"], "config key 'benchmark_filename': expected a list such as [a,b], got 'train'"),
    (["--benchmark_filename=[train,valid"], "override '--benchmark_filename': not a valid list or mapping (line 1"),
])
def test_bad_values_are_refused_with_their_key_before_loading(data, capsys, no_data_loading, extra, message):
    refused(capsys, args_for(data, *extra), message)


def test_valid_metric_bigger_that_agrees_with_the_metric_is_accepted(data, capsys, no_data_loading):
    with pytest.raises(AssertionError, match="data was loaded"):  # past every check, up to the data
        main(args_for(data, "--valid_metric_bigger=True"))


def test_invalid_yaml_is_refused_with_its_line(data, capsys, no_data_loading, workdir):
    (workdir / "bad.yaml").write_text("epochs: 2\nlearning_rate: 0.01: 2\n")
    refused(capsys, args_for(data, "--config_files=bad.yaml"),
            "config file 'bad.yaml' is not valid yaml: line 2, column 20: mapping values are not allowed here")


# 6. Every resume failure is one line, before any data is loaded (or, for data that changed, before training).

@pytest.fixture
def finished_checkpoint(data):
    assert main(args_for(data, "--epochs=1")) == 0
    checkpoint, = glob.glob("ck/*.pth")
    return checkpoint


@pytest.mark.parametrize("make,extra,message", [
    (None, ["--resume=ck/none.pth"], "checkpoint 'ck/none.pth' does not exist"),
    (lambda good: good[:1000], [], "is not a readable checkpoint (truncated, or not written by torch.save): "
                                   "PytorchStreamReader failed reading zip archive"),
    (lambda good: os.urandom(4000), [], "is not a readable checkpoint (truncated, or not written by torch.save)"),
    (lambda good: b"", [], "is not a readable checkpoint"),
    (lambda good: good, ["--model=MMLSimpleX"], "' is of model MMLMF; this run trains MMLSimpleX"),
    (lambda good: good, ["--embedding_size=32"],
     "' was trained with embedding_size=64; this run has embedding_size=32 (resume with the checkpoint's settings)"),
    (lambda good: good, ["--num_negatives=7"], "' was trained with num_negatives=5; this run has num_negatives=7"),
])
def test_bad_resume_is_refused_before_loading_data(finished_checkpoint, data, capsys, monkeypatch, make, extra,
                                                    message):
    if make is not None:
        with open(finished_checkpoint, "rb") as f:
            content = make(f.read())
        with open("ck/bad.pth", "wb") as f:
            f.write(content)
        extra = ["--resume=ck/bad.pth"] + extra
    capsys.readouterr()
    monkeypatch.setattr(quick_start, "create_dataset", lambda *a: pytest.fail("data was loaded before the refusal"))
    refused(capsys, args_for(data, *extra), message)


def test_resume_on_data_that_changed_is_refused_naming_the_mismatch(finished_checkpoint, data, capsys):
    more_items = ROWS + [(u, 61 + u % 5) for u in range(1, 41)]
    write_dataset(data, "tiny", HEADER + rows_text(more_items))
    capsys.readouterr()
    refused(capsys, args_for(data, f"--resume={finished_checkpoint}"),
            f"checkpoint '{finished_checkpoint}' does not fit this model: size mismatch for item_embedding.weight")


# 7. A checkpoint folder that cannot be written is refused before the first epoch (before any data).

@pytest.mark.parametrize("where,message", [
    ("a_file", "checkpoint_dir: 'a_file' is a file; expected a folder"),
    ("a_file/sub", "checkpoint_dir: cannot write checkpoints to 'a_file/sub' (Not a directory)"),
])
def test_unwritable_checkpoint_dir_is_refused_before_loading(data, capsys, no_data_loading, workdir, where, message):
    (workdir / "a_file").write_text("")
    refused(capsys, args_for(data, f"--checkpoint_dir={where}"), message)


# 8. Atomic files: each fault named with its file and line, before RecBole loads anything.

GOOD = HEADER + rows_text(ROWS)


@pytest.mark.parametrize("content,extra,message", [
    (HEADER + "1\t2\t4.0\t9\n" + rows_text(ROWS), [], "tiny.inter': line 2 has 4 fields, the header has 3"),
    (GOOD + "1\t2\n", [], "tiny.inter': line 482 has 2 fields, the header has 3"),
    ("\ufeff" + GOOD, [], "tiny.inter': starts with a UTF-8 byte-order mark; save it without one"),
    (GOOD + "3\t5\tabc\n", ["--load_col={inter:[user_id,item_id,rating]}"],
     "tiny.inter': line 482, field rating:float: expected a number, got 'abc'"),
    (GOOD.encode() + b"3\t\xff\xfe\t4.0\n", [], "tiny.inter': line 482 is not valid utf-8 (byte b'\\xff')"),
    (HEADER + rows_text([(1, i) for i in range(1, 30)]), [],
     "dataset 'tiny': 1 user in tiny.inter; recommendation needs at least 2"),
    (GOOD + rows_text([(41, i) for i in range(1, 61)]), [],
     "dataset 'tiny': user_id '41' interacted with all 60 items of tiny.inter"),
    ("user_id:token\titem_id:tokn\n1\t2\n", [], "tiny.inter': line 1, field 'item_id' has type 'tokn'"),
    ("user:token\titem_id:token\n1\t2\n", [], "tiny.inter': no field 'user_id' in the header"),
])
def test_malformed_atomic_files_are_refused_with_file_and_line(data, capsys, no_data_loading, content, extra, message):
    write_dataset(data, "tiny", content)
    refused(capsys, args_for(data, *extra), message)


def test_an_unreadable_atomic_file_is_refused(data, capsys, no_data_loading):
    os.remove(data / "tiny" / "tiny.inter")
    os.mkdir(data / "tiny" / "tiny.inter")  # exists but cannot be read as a file (chmod cannot stop root)
    refused(capsys, args_for(data), "tiny.inter': cannot be read (Is a directory)")


def test_a_feature_file_is_checked_only_when_recbole_loads_it(data, capsys, no_data_loading):
    (data / "tiny" / "tiny.item").write_text("item_id:token\tprice:float\n1\t3.5\n2\tcheap\n")
    config = quick_start.build_config("MMLMF", "tiny", cmd_args=args_for(data)[2:])
    quick_start.check_dataset_files(config)  # load_col has no item part: RecBole never reads tiny.item
    refused(capsys, args_for(data, "--load_col={inter:[user_id,item_id],item:[item_id,price]}"),
            "tiny.item': line 3, field price:float: expected a number, got 'cheap'")


@pytest.mark.parametrize("extra,action", [
    ([], "kept (set rm_dup_inter=first or rm_dup_inter=last to drop them)"),
    (["--rm_dup_inter=first"], "dropped: rm_dup_inter=first keeps one of each"),
])
def test_duplicate_rows_are_warned_about_in_one_line(data, caplog, extra, action):
    write_dataset(data, "tiny", GOOD + rows_text(ROWS[:3]))
    assert main(args_for(data, "--epochs=1", *extra)) == 0
    warning, = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "duplicate" in r.getMessage()]
    assert warning.endswith(f"tiny.inter': 3 duplicate (user_id, item_id) rows, the first at line 482; {action}")
    assert "\n" not in warning


# 10. A list in yaml flow syntax on the command line is the list the user wrote.

def test_yaml_flow_list_on_the_command_line_is_a_list(data):
    for part, rows in (("train", ROWS), ("valid", ROWS[:40]), ("test", ROWS[40:80])):
        write_dataset(data, "parts", HEADER + rows_text(rows), part)
    argv = args_for(data, "--epochs=1", "--benchmark_filename=[train,valid,test]", dataset="parts")
    config = quick_start.build_config("MMLMF", "parts", cmd_args=argv[2:])
    assert config["benchmark_filename"] == ["train", "valid", "test"]
    assert main(argv) == 0  # the three files were found (not parts.[.inter)


# 11. A refusal at the data stage is not preceded by RecBole's config log.

def test_a_refusal_after_loading_does_not_print_the_config_first(data, capsys, caplog):
    caplog.set_level(logging.INFO)
    write_dataset(data, "cold", HEADER + rows_text(ROWS), "train")
    write_dataset(data, "cold", HEADER + rows_text([(99, 3)] + ROWS[:5]), "test")
    argv = args_for(data, "--benchmark_filename=['train','test','test']", dataset="cold")
    refused(capsys, argv, "users of the valid part have no training interactions")
    assert not messages(caplog, "General Hyper Parameters")
