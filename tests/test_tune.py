"""Ray Tune searches: search-space files, refusals before Ray starts, and (slow) real searches on the
tiny dataset: their outputs, reruns, resumes and interruptions."""

import csv
import glob
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

import pytest
import ray
import yaml
from ray.tune.search.variant_generator import generate_variants

from recbole_mml import cli
from recbole_mml.config import PROPERTIES_DIR
from recbole_mml.errors import ConfigError, SearchInterrupted
from recbole_mml.ray_session import init_local_ray
from recbole_mml.tune import driver as tune
from recbole_mml.tune.args import parse_args
from recbole_mml.tune.outputs import write_outputs
from recbole_mml.tune.plan import plan_search
from recbole_mml.tune.space import load_search_space

from conftest import ROOT, TINY_DATA

# Small and fast: MMLMF on the tiny dataset with few shared negatives, one thread per trial.
FAST = [
    "--model=MMLMF", "--dataset=tiny", f"--data_path={TINY_DATA}", "--train_batch_size=256", "--num_negatives=10",
    "--neg_sharing=batch", "--show_progress=False", "--cpus_per_trial=1",
]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def samples(space, n=2000):
    """n points drawn by Ray's own variant generator from the parsed space, decoded to config values."""
    ray_space = space.to_ray()
    points = []
    for _ in range(n):
        (_, spec), = generate_variants({"config": ray_space})
        points.append(space.decode(spec["config"]))
    return points


def read_trials(output):
    with open(os.path.join(output, "trials.csv"), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# Search-space files ---------------------------------------------------------------------------


def test_hyper_loguniform_takes_natural_log_bounds_like_recbole(tmp_path):
    space = load_search_space(write(tmp_path / "s.hyper", "learning_rate loguniform -8,0\n"))
    values = [p["learning_rate"] for p in samples(space)]
    assert min(values) >= math.exp(-8) and max(values) <= 1.0
    # log-uniform: the median is exp(-4) ~ 0.018; a uniform draw on the same bounds would give ~0.5
    assert 0.01 < statistics.median(values) < 0.035


def test_yaml_loguniform_takes_plain_bounds(tmp_path):
    space = load_search_space(write(tmp_path / "s.yaml", "learning_rate: {loguniform: [1.0e-4, 1.0e-2]}\n"))
    values = [p["learning_rate"] for p in samples(space)]
    assert min(values) >= 1e-4 and max(values) <= 1e-2
    assert 5e-4 < statistics.median(values) < 2e-3  # exp(mean of logs) = 1e-3


def test_uniform_spans_its_bounds(tmp_path):
    space = load_search_space(write(tmp_path / "s.hyper", "neg_weight uniform 100,800\n"))
    values = [p["neg_weight"] for p in samples(space)]
    assert min(values) >= 100 and max(values) <= 800
    assert 400 < statistics.median(values) < 500


def test_quniform_gives_multiples_of_q_and_integers_for_integer_bounds(tmp_path):
    text = "embedding_size quniform 32,128,32\nneg_alpha quniform 0.5,1,0.25\n"
    space = load_search_space(write(tmp_path / "s.hyper", text))
    points = samples(space, 500)
    sizes = {p["embedding_size"] for p in points}
    assert sizes == {32, 64, 96, 128} and all(type(v) is int for v in sizes)
    assert {p["neg_alpha"] for p in points} <= {0.5, 0.75, 1.0}


def test_choice_of_lists_reaches_the_trial_as_lists(tmp_path):
    text = "margins: {choice: [[0.9], [0.8, 0.9]]}\nembedding_size: {choice: [64, 128]}\n"
    space = load_search_space(write(tmp_path / "s.yaml", text))
    points = samples(space, 200)
    assert {tuple(p["margins"]) for p in points} == {(0.9,), (0.8, 0.9)}
    assert {p["embedding_size"] for p in points} == {64, 128}


def test_hyper_choice_of_strings(tmp_path):
    space = load_search_space(write(tmp_path / "s.hyper", "neg_sharing choice ['row', 'batch']\n"))
    assert {p["neg_sharing"] for p in samples(space, 200)} == {"row", "batch"}


def test_keys_joined_by_commas_are_chosen_together(tmp_path):
    text = "margins,weights:\n  choice:\n    - [[0.9], [1.0]]\n    - [[0.8, 0.9], [0.25, 0.75]]\n"
    space = load_search_space(write(tmp_path / "s.yaml", text))
    pairs = {(tuple(p["margins"]), tuple(p["weights"])) for p in samples(space, 200)}
    assert pairs == {((0.9,), (1.0,)), ((0.8, 0.9), (0.25, 0.75))}


def test_yaml_plain_value_is_fixed_in_every_trial(tmp_path):
    space = load_search_space(write(tmp_path / "s.yaml", "neg_weight: 150\nlearning_rate: {choice: [0.01]}\n"))
    assert samples(space, 3)[0] == {"neg_weight": 150, "learning_rate": 0.01}


def test_grid_enumerates_choices_and_quniform_and_refuses_continuous(tmp_path):
    text = "embedding_size quniform 32,64,32\nneg_sharing choice ['row','batch']\n"
    space = load_search_space(write(tmp_path / "s.hyper", text))
    grid = space.to_ray(grid=True)
    assert grid["embedding_size"] == {"grid_search": [32, 64]}
    assert grid["neg_sharing"] == {"grid_search": ["row", "batch"]}
    text = "neg_sharing choice ['row']\nlearning_rate loguniform -8,0\n"
    space = load_search_space(write(tmp_path / "c.hyper", text))
    with pytest.raises(ConfigError, match=r"c\.hyper, line 2: --search grid needs a finite set"):
        space.to_ray(grid=True)


def test_trial_count_is_the_samples_times_the_grid_as_ray_generates_it(tmp_path):
    text = "embedding_size: {quniform: [32, 64, 32]}\nneg_sharing: {choice: [row, batch, user]}\nneg_weight: 150\n"
    space = load_search_space(write(tmp_path / "s.yaml", text))
    assert space.trial_count(3, grid=True) == 3 * 2 * 3
    assert len(list(generate_variants({"config": space.to_ray(grid=True)}))) == space.trial_count(1, grid=True)
    assert space.trial_count(3) == 3  # random and optuna searches: one trial per sample


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("a.hyper", "embedding_size choice [64]\nlearning_rate loguniform -8\n",
         r"a\.hyper, line 2: loguniform .* natural-log bounds"),
        ("b.hyper", "# comment\n\nlearning_rate logunifrom -8,0\n", r"b\.hyper, line 3: expected 'name type values'"),
        ("c.hyper", "learning_rate uniform 0.1,0.01\n", r"c\.hyper, line 1: uniform .* low < high"),
        ("d.hyper", "embedding_size choice [64,\n", r"d\.hyper, line 1: choice .* a list"),
        ("e.hyper", "neg_weight quniform 100,800,0\n", r"e\.hyper, line 1: quniform .* q > 0"),
        ("f.yaml", "embedding_size: {choice: [64]}\nneg_weight: {uniform: [5]}\n",
         r"f\.yaml, line 2: uniform .* \[low, high\]"),
        ("g.yaml", "learning_rate: {loguniform: [-8, 0]}\n", r"g\.yaml, line 1: loguniform .*\(plain values"),
        ("h.yaml", "learning_rate: {loguniformm: [1.0e-4, 1.0e-2]}\n",
         r"h\.yaml, line 1: unknown distribution .* 'loguniform'"),
        ("i.yaml", "margins,weights: {choice: [[[0.9], [1.0]], [[0.8]]]}\n",
         r"i\.yaml, line 1: each option .* 2 values"),
        ("j.yaml", "neg_weight: {choice: [1]}\nneg_weight: {choice: [2]}\n",
         r"j\.yaml, line 2: key 'neg_weight' is already searched"),
        ("k.yaml", "a: [1\n", r"k\.yaml, line 2: not valid yaml"),
    ],
)
def test_malformed_entry_names_file_line_and_expectation(tmp_path, name, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_search_space(write(tmp_path / name, text))


def test_cli_reports_a_malformed_line_in_one_line_before_ray_starts(tmp_path, capsys):
    bad = write(tmp_path / "bad.hyper", "embedding_size choice [64,128]\nlearning_rate loguniform -8\n")
    code = cli.main(["tune", f"--params_file={bad}", f"--output={tmp_path / 'out'}"])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_BAD_INPUT
    assert len(err.splitlines()) == 1 and "bad.hyper, line 2" in err
    assert not (tmp_path / "out").exists()


def test_unknown_key_in_the_space_is_refused_with_its_line(tmp_path):
    space = write(tmp_path / "s.yaml", "learning_rate: {choice: [0.01]}\nmargin: {choice: [[0.9]]}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml, line 2: unknown config key 'margin' .* did you mean 'margins'"):
        tune.main([f"--params_file={space}", f"--output={tmp_path / 'out'}"])


def test_a_key_cannot_be_searched_and_fixed_at_once(tmp_path):
    space = write(tmp_path / "s.yaml", "learning_rate: {choice: [0.01, 0.001]}\n")
    with pytest.raises(ConfigError, match=r"line 1: 'learning_rate' is searched and also fixed by --learning_rate=0.1"):
        tune.main([f"--params_file={space}", f"--output={tmp_path / 'out'}", "--learning_rate=0.1"])


def test_example_search_spaces_parse_and_name_real_mmlmf_keys(tmp_path):
    from recbole_mml.registry import get_model
    from recbole_mml.validation import known_keys

    known = known_keys("MMLMF", get_model("MMLMF"))
    for name in ("mmlmf.yaml", "mmlmf.hyper"):
        space = load_search_space(os.path.join(PROPERTIES_DIR, "search", name))
        assert {"margins", "weights", "neg_weight", "learning_rate"} <= set(space.keys) <= known
        for point in samples(space, 50):
            assert len(point["margins"]) == len(point["weights"])


# A real search --------------------------------------------------------------------------------

SPACE = """\
# the third option has a margin outside [-1, 1]: its trial fails, and the search goes on
margins,weights:
  choice:
    - [[0.9], [1.0]]
    - [[0.3, 0.5], [0.3, 0.7]]
    - [[1.5], [1.0]]
learning_rate: {choice: [0.005]}
"""


@pytest.fixture(scope="module")
def ray_session():
    init_local_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def search(ray_session, tmp_path_factory):
    """One 3-trial grid search shared by the assertions below."""
    root = tmp_path_factory.mktemp("search")
    output = str(root / "out")
    space = write(root / "space.yaml", SPACE)
    args = ["--epochs=2", "--max_concurrent=2", f"--params_file={space}", "--search=grid", f"--output={output}"]
    code = tune.main(FAST + args)
    return {"code": code, "output": output}


@pytest.mark.slow
def test_search_writes_one_row_per_trial_with_status_epochs_metric_and_values(search):
    assert search["code"] == 0
    rows = read_trials(search["output"])
    assert len(rows) == 3
    assert list(rows[0])[:6] == ["trial_id", "status", "epochs", "valid_mrr@10", "last_valid_mrr@10", "error"]
    assert {"margins", "weights", "learning_rate"} <= set(rows[0])
    by_margins = {r["margins"]: r for r in rows}
    failed = by_margins["[1.5]"]
    assert failed["status"] == "ERROR" and "margins" in failed["error"] and "[-1, 1]" in failed["error"]
    for margins in ("[0.9]", "[0.3, 0.5]"):
        row = by_margins[margins]
        assert row["status"] in ("TERMINATED", "STOPPED") and row["epochs"] in ("1", "2")
        assert 0 < float(row["valid_mrr@10"]) < 1
    assert float(rows[0]["valid_mrr@10"]) >= float(rows[1]["valid_mrr@10"])  # best first


@pytest.mark.slow
def test_best_yaml_holds_the_best_trials_values_and_the_fixed_settings(search):
    rows = read_trials(search["output"])
    with open(os.path.join(search["output"], "best.yaml"), encoding="utf-8") as f:
        best = yaml.safe_load(f)
    assert best["model"] == "MMLMF" and best["dataset"] == "tiny" and best["data_path"] == TINY_DATA
    assert best["margins"] == json.loads(rows[0]["margins"]) and best["weights"] == json.loads(rows[0]["weights"])
    assert best["epochs"] == 2 and best["train_batch_size"] == 256 and best["torch_num_threads"] == 1


@pytest.mark.slow
def test_rerunning_best_yaml_reproduces_the_best_trial(search, workdir):
    from recbole_mml.quick_start import run_recbole_mml

    rows = read_trials(search["output"])
    with open(os.path.join(search["output"], "best_test.json"), encoding="utf-8") as f:
        best_test = json.load(f)
    result = run_recbole_mml(config_file_list=[os.path.join(search["output"], "best.yaml")])
    assert result["best_valid_score"] == pytest.approx(float(rows[0]["valid_mrr@10"]), abs=1e-9)
    assert best_test["trial_id"] == rows[0]["trial_id"]
    assert {k: float(v) for k, v in result["test_result"].items()} == pytest.approx(best_test["test_result"], abs=1e-9)


@pytest.mark.slow
def test_resuming_a_finished_search_runs_no_trial_again(search):
    def iterations():
        files = glob.glob(os.path.join(search["output"], "ray", "*", "progress.csv"))
        return sorted(len(open(f).readlines()) for f in files)

    before, rows = iterations(), read_trials(search["output"])
    assert tune.main(["--resume", f"--output={search['output']}"]) == 0
    assert iterations() == before and read_trials(search["output"]) == rows


@pytest.mark.slow
def test_a_search_stopped_before_creating_every_trial_is_interrupted_not_finished(search, tmp_path):
    """Stopped between two trials, a search has no unfinished trial left; its count of trials still tells."""
    output = str(tmp_path / "out")
    shutil.copytree(search["output"], output)
    os.remove(os.path.join(output, "best.yaml"))
    args = parse_args(["--resume", f"--output={output}"])
    setup, config, _ = plan_search(args)
    assert setup.space.trial_count(args.num_samples, grid=True) == 3
    with pytest.raises(SearchInterrupted, match="--resume"):
        write_outputs(output, setup, config, None, "max", expected_trials=4)
    assert len(read_trials(output)) == 3 and not os.path.exists(os.path.join(output, "best.yaml"))


@pytest.mark.slow
def test_interrupted_search_resumes_trials_from_their_checkpoints(ray_session, tmp_path, capsys):
    output = str(tmp_path / "out")
    space = write(tmp_path / "space.yaml", "learning_rate: {choice: [0.005, 0.004]}\n")
    # 20 epochs of ~0.25 s: the first trial is still training when the stop, sent after its first, arrives
    args = FAST + [f"--params_file={space}", "--search=grid", "--scheduler=fifo", "--epochs=20", "--max_concurrent=1",
                   f"--output={output}"]

    def interrupt_after_first_epoch():  # SIGUSR1 is Ray Tune's "stop and save", like Ctrl+C
        deadline = time.time() + 600  # Ray starts slowly on a busy machine
        while time.time() < deadline:
            for path in glob.glob(os.path.join(output, "ray", "*", "result.json")):
                with open(path, encoding="utf-8") as f:
                    if re.search(r'"epoch": 1\b', f.read()):
                        os.kill(os.getpid(), signal.SIGUSR1)
                        return
            time.sleep(0.1)

    threading.Thread(target=interrupt_after_first_epoch, daemon=True).start()
    assert cli.main(["tune"] + args) == cli.EXIT_INTERRUPTED
    resume = f"search interrupted; continue it with: python run_recbole_mml.py tune --resume --output={output}"
    assert capsys.readouterr().err.strip().splitlines()[-1] == resume
    interrupted = read_trials(output)
    assert not any(r["status"] == "TERMINATED" for r in interrupted)
    assert not os.path.exists(os.path.join(output, "best.yaml"))

    assert tune.main(["--resume", f"--output={output}"]) == 0
    rows = read_trials(output)
    assert len(rows) == 2 and all(r["status"] == "TERMINATED" and r["epochs"] == "20" for r in rows)
    resumed = [r for r in interrupted if r["epochs"] != "0"][0]
    trial_dir = glob.glob(os.path.join(output, "ray", f"*{resumed['trial_id']}*"))[0]
    logs = "".join(open(p, encoding="utf-8").read() for p in glob.glob(os.path.join(trial_dir, "log", "*", "*.log")))
    assert "Checkpoint loaded. Resume training from epoch" in logs  # RecBole went on from Ray's checkpoint
    assert os.path.exists(os.path.join(output, "best.yaml"))


def test_sigterm_ends_a_search_with_one_line_saying_how_to_resume(tmp_path):
    """A job scheduler's SIGTERM mid-search: Ray Tune stops gracefully, the last line says how to resume."""
    output = str(tmp_path / "out")
    space = write(tmp_path / "space.yaml", "learning_rate: {choice: [0.005, 0.004]}\n")
    command = [sys.executable, os.path.join(ROOT, "run_recbole_mml.py"), "tune"] + FAST + [
        f"--params_file={space}", "--search=grid", "--scheduler=fifo", "--epochs=500", "--max_concurrent=1",
        f"--output={output}",
    ]
    env = dict(os.environ, PYTHONPATH=ROOT)
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600  # Ray starts slowly on a busy machine
    while not any(os.path.getsize(p) for p in glob.glob(os.path.join(output, "ray", "*", "result.json"))):
        assert process.poll() is None and time.time() < deadline, "the search ended before a trial reported"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=240)
    assert process.returncode == cli.EXIT_INTERRUPTED, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last == f"search interrupted; continue it with: python run_recbole_mml.py tune --resume --output={output}"
    assert os.path.isfile(os.path.join(output, "trials.csv")) and "Traceback" not in err
