"""Reliability: same seed, same numbers; a killed run resumes to the same result; bad input is refused cleanly."""

import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from recbole_mml.cli import main
from recbole_mml.checkpoint import load_checkpoint
from recbole_mml.errors import ConfigError, NonFiniteLossError
from recbole_mml.quick_start import (
    build_config, build_trainer, fit_and_test, prepare_data, run_recbole_mml,
)
from recbole_mml.registry import get_model, get_trainer

from conftest import ROOT, TINY

QUICK = dict(TINY, epochs=2, train_batch_size=128, num_negatives=20, learning_rate=0.01)


@pytest.mark.parametrize("model", ["MMLMF", "MMLSimpleX", "MMLLightGCN"])
def test_same_seed_gives_identical_metrics(workdir, model):
    runs = [run_recbole_mml(model, "tiny", config_dict=dict(QUICK, seed=7), saved=False) for _ in range(2)]
    assert runs[0]["test_result"] == runs[1]["test_result"]
    assert runs[0]["best_valid_result"] == runs[1]["best_valid_result"]
    other = run_recbole_mml(model, "tiny", config_dict=dict(QUICK, seed=8), saved=False)
    assert other["test_result"] != runs[0]["test_result"]


def test_resumed_training_ends_with_the_same_metrics(workdir):
    """A run resumed from the checkpoint of its second epoch ends where the uninterrupted run ends
    (sampler, shuffle and dropout are reseeded per epoch; the sampler's state is in the checkpoint)."""
    settings = dict(QUICK, epochs=4, stopping_step=100, seed=3)
    config = build_config("MMLSimpleX", "tiny", config_dict=settings)
    data = prepare_data(config)
    trainer = build_trainer(config, *data[:2])
    copy = str(workdir / "after-epoch-1.pth")

    def keep_checkpoint(epoch_idx, valid_score):
        if epoch_idx == 1:
            shutil.copyfile(trainer.saved_model_file, copy)

    trainer.fit(data[1], data[2], verbose=False, saved=True, callback_fn=keep_checkpoint)
    full = trainer.evaluate(data[3], load_best_model=True)
    assert load_checkpoint(copy)["epoch"] <= 1

    config = build_config("MMLSimpleX", "tiny", config_dict=settings)
    resumed = fit_and_test(config, build_trainer(config, *data[:2]), *data[1:], resume=copy, verbose=False)
    assert resumed["test_result"] == {name: float(value) for name, value in full.items()}


def _cli(args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    return [sys.executable, os.path.join(ROOT, "run_recbole_mml.py")] + args, dict(cwd=cwd, env=env)


def _test_result(output):
    return re.search(r"test result: (\{.*\})", output).group(1)


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_final_metrics(tmp_path):
    args = ["--model=MMLSimpleX", "--dataset=ml-100k", "--epochs=5", "--show_progress=False", "--seed=3",
            "--num_negatives=20", "--torch_num_threads=1", "--train_batch_size=1024", "--stopping_step=100"]
    (tmp_path / "full").mkdir()
    (tmp_path / "killed").mkdir()
    command, kwargs = _cli(args, tmp_path / "full")
    full = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert full.returncode == 0, full.stderr[-2000:]

    command, kwargs = _cli(args, tmp_path / "killed")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    deadline = time.time() + 300
    while not glob.glob(str(tmp_path / "killed" / "saved" / "*.pth")) and time.time() < deadline:
        assert process.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoint, = glob.glob(str(tmp_path / "killed" / "saved" / "*.pth"))
    assert load_checkpoint(checkpoint)["epoch"] < 4  # killed mid-way, and the file is whole
    assert not glob.glob(str(tmp_path / "killed" / "saved" / ".tmp-*"))

    command, kwargs = _cli(args + [f"--resume={checkpoint}"], tmp_path / "killed")
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resume training from epoch" in resumed.stdout + resumed.stderr
    assert _test_result(resumed.stdout + resumed.stderr) == _test_result(full.stdout + full.stderr)


@pytest.mark.slow
def test_a_killed_benchmark_goes_on_from_its_run_state_to_the_uninterrupted_row(tmp_path):
    """The benchmark command and its run's subprocess killed mid-training; the same command again
    goes on from the saved epoch and appends the row an uninterrupted benchmark appends."""
    import pandas as pd
    import yaml

    spec = {"datasets": ["ml-100k"], "seeds": [3], "models": ["ENMF"], "resume_every_s": 0,
            "common": {"epochs": 8, "stopping_step": 100, "show_progress": False, "torch_num_threads": 1,
                       "train_batch_size": 64, "metrics": ["Recall", "NDCG"], "topk": [20], "valid_metric": "NDCG@20"}}
    rows = {}
    for name in ("whole", "killed"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "bench.yaml").write_text(yaml.safe_dump(dict(spec, output_dir="out")))
    command, kwargs = _cli(["benchmark", "--config", "bench.yaml"], tmp_path / "whole")
    assert subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs).returncode == 0
    rows["whole"] = pd.read_csv(tmp_path / "whole" / "out" / "results.csv").iloc[0]

    command, kwargs = _cli(["benchmark", "--config", "bench.yaml"], tmp_path / "killed")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               **kwargs)
    state = tmp_path / "killed" / "out" / "checkpoints" / "ENMF__ml-100k__seed-3" / "run_state.pth"
    deadline = time.time() + 300
    while not (state.exists() and load_checkpoint(state)["epoch"] >= 3) and time.time() < deadline:
        assert process.poll() is None, "the benchmark ended before it could be killed"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its run's subprocess
    process.wait()
    assert not (tmp_path / "killed" / "out" / "results.csv").exists()
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert again.returncode == 0, again.stderr[-2000:]
    rows["killed"] = pd.read_csv(tmp_path / "killed" / "out" / "results.csv").iloc[0]

    for column in ("test_recall@20", "test_ndcg@20", "best_valid_score", "epochs_run"):
        assert rows["killed"][column] == rows["whole"][column], column
    log = (tmp_path / "killed" / "out" / "logs" / "ENMF__ml-100k__seed-3.log").read_text()
    assert "training on from epoch" in log and log.count("epoch 0 training") == 1  # the killed attempt's log kept
    assert not (tmp_path / "killed" / "out" / "checkpoints").exists()


def _children(pid):
    """The pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process tree from /proc")
def test_a_terminated_benchmark_stops_its_run_and_says_how_to_go_on(tmp_path):
    """SIGTERM to the benchmark command ends its run's subprocess too (an orphan would train on, unseen)
    and leaves one line naming the results file and the command that goes on, exit code 1."""
    import yaml

    spec = {"datasets": ["tiny"], "seeds": [1], "models": ["MMLMF"], "output_dir": "out",
            "common": dict(TINY, epochs=100000, stopping_step=100000, torch_num_threads=1)}
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(spec))
    command, kwargs = _cli(["benchmark", "--config", "bench.yaml"], tmp_path)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, **kwargs)
    try:
        state, deadline = tmp_path / "out" / "checkpoints" / "MMLMF__tiny__seed-1", time.time() + 120
        while not (state.is_dir() and any(state.iterdir())) and time.time() < deadline:  # training has begun
            assert process.poll() is None, process.stderr.read()[-2000:]
            time.sleep(0.1)
        run, = _children(process.pid)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 1
        assert stderr.strip().splitlines()[-1] == (
            "benchmark interrupted; the finished runs are in out/results.csv; the same command goes on from "
            "there: python run_recbole_mml.py benchmark --config bench.yaml")
        with pytest.raises(ProcessLookupError):
            os.kill(run, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group, pass or fail


@pytest.mark.parametrize("args,message", [
    (["--model=NoSuchModel"], "model: unknown model 'NoSuchModel'"),
    (["--dataset=no-such-data"], "dataset 'no-such-data': no atomic file at"),
    (["--margin=0.8"], "unknown config key 'margin' for model MMLMF; did you mean 'margins'?"),
    (["--margins=[0.5,1.5]", "--weights=[0.5,0.5]"], "margins: expected values in [-1, 1]"),
    (["--margins=[0.5,0.9]", "--weights=[1.0]"], "weights: expected 2 weights (one per margin), got 1"),
    (["--weights=[0.1,-0.2,0.7]"], "weights: expected a finite number >= 0"),
    (["--num_negatives=0"], "num_negatives: expected an integer >= 1, got 0"),
    (["--num_negatives=5000", "--neg_replacement=False"], "num_negatives: 5000 is more than the 1682 items"),
    (["--train_batch_size=ten"], "config key 'train_batch_size': expected a number, got 'ten'"),
    (["--epochs=2"], "override '--epochs' given twice with different values"),
    (["--learning_rate=fast"], "config key 'learning_rate': expected a number, got 'fast'"),
    (["--loss_type=HINGE"], "loss_type: expected one of"),
    (["--neg_sharing=user"], "neg_sharing: expected one of"),
    (["epochs=3"], "malformed override 'epochs=3': expected --key=value"),
    (["--config_files=missing.yaml"], "config file 'missing.yaml' does not exist"),
])
def test_bad_input_gives_one_line_and_exit_code_2(workdir, capsys, args, message):
    assert main(["--model=MMLMF", "--dataset=ml-100k", "--epochs=1"] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_unknown_key_can_be_downgraded_to_a_warning(workdir, caplog):
    config = build_config("MMLMF", "ml-100k", config_dict={"margin": 0.8, "strict_config_keys": False})
    assert config["margins"] == build_config("MMLMF", "ml-100k")["margins"]
    assert "unknown config key 'margin'" in caplog.text


def test_keys_of_recbole_models_stay_known(workdir):
    config = build_config("SimpleX", "ml-100k", config_dict={"margin": 0.8, "negative_weight": 5})
    assert config["margin"] == 0.8
    with pytest.raises(ConfigError, match="unknown config key 'margins' for model BPR"):
        build_config("BPR", "ml-100k", config_dict={"margins": [0.9]})


def write_inter(folder, name, rows, header="user_id:token\titem_id:token"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text(header + "\n" + "".join(f"{u}\t{i}\n" for u, i in rows))


@pytest.mark.parametrize("content,message", [
    ("", "line 1 must be a header"),
    ("user_id\titem_id\n1\t2\n", "line 1 must be a header"),
    ("user_id:token\titem_id:token\n", "no data rows after the header"),
])
def test_malformed_or_empty_atomic_files_are_refused(workdir, capsys, content, message):
    (workdir / "data" / "bad").mkdir(parents=True)
    (workdir / "data" / "bad" / "bad.inter").write_text(content)
    assert main(["--model=MMLMF", "--dataset=bad", f"--data_path={workdir / 'data'}"]) == 2
    err = capsys.readouterr().err
    assert "bad.inter" in err and message in err


def test_users_without_training_interactions_are_refused(workdir, capsys):
    data = workdir / "data" / "cold"
    train = [(u, (u + k) % 40 + 1) for u in range(1, 30) for k in range(10)]
    test = [(u, (u + 20) % 40 + 1) for u in range(1, 30)] + [(99, 3)]  # user 99 never trains
    write_inter(data, "cold.train", train)
    write_inter(data, "cold.test", test)
    args = ["--model=MMLMF", "--dataset=cold", f"--data_path={workdir / 'data'}", "--epochs=1",
            "--benchmark_filename=['train','test','test']"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "users of the valid part have no training interactions" in err and "'99'" in err


def test_non_finite_loss_stops_with_epoch_and_batch_and_keeps_last_good_checkpoint(workdir):
    config = build_config("MMLMF", "tiny", config_dict=dict(QUICK, epochs=3))
    _, train_data, valid_data, _ = prepare_data(config)
    model = get_model("MMLMF")(config, train_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "MMLMF")(config, model)
    calls = {"n": 0}
    batches_per_epoch = len(train_data)
    original = model.calculate_loss

    def poisoned(interaction):
        calls["n"] += 1
        loss = original(interaction)
        return loss * float("nan") if calls["n"] == batches_per_epoch + 3 else loss  # epoch 1, batch 2

    model.calculate_loss = poisoned
    with pytest.raises(NonFiniteLossError, match=r"training loss became nan at epoch 1, batch 2"):
        trainer.fit(train_data, valid_data, verbose=False, saved=True)
    checkpoint = load_checkpoint(trainer.saved_model_file)
    assert checkpoint["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())
