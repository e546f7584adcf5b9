"""Train every RecBole general recommender for one epoch on ml-100k through recbole_mml.

    python scripts/run_all_baselines.py [--models BPR LightGCN ...] [--jobs 2] [--timeout 1800] [--workdir DIR]

Checks that recbole_mml.compat makes all of RecBole's general models run on today's numpy, pandas,
scipy and torch: each model trains one epoch, saves its best checkpoint and is tested after
reloading it (``saved=True``), so the checkpoint path is exercised too. Every model runs in its own
subprocess (a crash or a hang fails one model, not the run) inside a temporary working folder.
Prints a pass/fail table with wall times and one line of reason per failure; exits 1 if any fail.
The few models that need other settings than their defaults are listed in MODEL_OVERRIDES.
"""

import argparse
import inspect
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed

import pandas as pd
from tqdm import tqdm

# Run from a checkout without installing: the repository root goes first on the import path.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

DATASET = "ml-100k"
COMMON_OVERRIDES = ["--epochs=1", "--show_progress=False"]
REPORTED_METRIC = "ndcg@10"

# Per-model overrides, only where a model's defaults do not give a one-epoch run that finishes.
MODEL_OVERRIDES = {
    # RaCT's default stage (actor pre-training) ignores `epochs` and runs `pretrain_epochs` (150),
    # saving every `save_step` epochs; the test then reloads the last of those files.
    "RaCT": ["--pretrain_epochs=1", "--save_step=1"],
    # NAIS runs its attention MLP (embedding_size x weight_size) over every (history item, target
    # item) pair: about 1e12 FLOPs per epoch and as many per full-ranking evaluation at the default
    # 64 x 64 (the training epoch alone took 850 s on 2 busy cores). 16 x 16 runs the same code.
    "NAIS": ["--embedding_size=16", "--weight_size=16"],
    # NCL's default 1000 prototypes exceed ml-100k's 943 users; k-means needs a point per cluster.
    "NCL": ["--num_clusters=100"],
}


def general_recommenders():
    """Names of every model class RecBole exports from recbole.model.general_recommender."""
    from recbole_mml import compat

    compat.apply()  # numpy aliases, before RecBole's models are imported
    import recbole.model.general_recommender as general
    from recbole.model.abstract_recommender import GeneralRecommender

    return sorted(
        name for name, obj in vars(general).items()
        if inspect.isclass(obj) and issubclass(obj, GeneralRecommender) and obj is not GeneralRecommender
    )


def worker(model, result_file, threads):
    """Train and test ``model`` in this process; write its test result (or error) as JSON."""
    from recbole_mml.quick_start import run  # applies the compatibility fixes

    cmd_args = COMMON_OVERRIDES + [f"--torch_num_threads={threads}"] + MODEL_OVERRIDES.get(model, [])
    try:
        result = run(model, DATASET, cmd_args=cmd_args, saved=True)
        test = {k: float(v) for k, v in result["test_result"].items()}
        bad = [k for k, v in test.items() if not math.isfinite(v)]
        if not test or bad:
            payload = {"ok": False, "reason": f"non-finite or missing test metrics: {bad or 'none'}"}
        elif not os.path.isfile(result["saved_model_file"] or ""):
            payload = {"ok": False, "reason": "no best-model checkpoint was written"}
        else:
            payload = {"ok": True, "test_result": test}
    except BaseException as e:  # any failure becomes one line of the table (the traceback goes to stderr)
        traceback.print_exc()
        message = (str(e).strip().splitlines() or [""])[0]
        payload = {"ok": False, "reason": f"{type(e).__name__}: {message}"}
    with open(result_file, "w", encoding="utf-8") as f:
        json.dump(payload, f)
    return 0 if payload["ok"] else 1


def last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_one(model, root, timeout, threads):
    """Run ``model`` in a subprocess with its own working folder; one row of the table."""
    workdir = os.path.join(root, model)
    os.makedirs(workdir, exist_ok=True)
    result_file = os.path.join(workdir, "result.json")
    if os.path.exists(result_file):  # a kept --workdir: never report a previous run's result
        os.remove(result_file)
    command = [sys.executable, os.path.abspath(__file__), "--worker", model, "--result", result_file,
               "--threads", str(threads)]
    output_file = os.path.join(workdir, "output.txt")  # the run's log and any traceback
    start = time.perf_counter()
    try:
        with open(output_file, "w", encoding="utf-8") as output:
            proc = subprocess.run(command, cwd=workdir, stdout=output, stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": model, "status": "FAIL", "seconds": round(time.perf_counter() - start, 1),
                REPORTED_METRIC: None, "reason": f"timeout after {timeout}s"}
    seconds = round(time.perf_counter() - start, 1)
    if os.path.isfile(result_file):
        with open(result_file, encoding="utf-8") as f:
            payload = json.load(f)
    else:  # the process died before writing (killed, out of memory, segfault)
        with open(output_file, encoding="utf-8", errors="replace") as f:
            payload = {"ok": False, "reason": f"exit code {proc.returncode}; last output: {last_line(f.read())}"}
    metric = payload.get("test_result", {}).get(REPORTED_METRIC)
    return {"model": model, "status": "pass" if payload["ok"] else "FAIL", "seconds": seconds,
            REPORTED_METRIC: metric, "reason": payload.get("reason", "")}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="a subset of model names (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="models trained at the same time")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per model before it counts as failed")
    parser.add_argument("--workdir", default=None, help="keep logs and checkpoints here (default: a temp folder)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        return worker(args.worker, args.result, args.threads)

    available = general_recommenders()
    models = args.models or available
    unknown = sorted(set(models) - set(available))
    if unknown:
        print(f"error: not RecBole general recommenders: {', '.join(unknown)}", file=sys.stderr)
        return 2
    jobs = max(1, args.jobs)
    threads = max(1, (os.cpu_count() or 1) // jobs)

    rows = []
    with tempfile.TemporaryDirectory(prefix="recbole-baselines-") as tmp:
        root = os.path.abspath(args.workdir) if args.workdir else tmp
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_one, m, root, args.timeout, threads) for m in models]
            with tqdm(total=len(futures), desc=f"{len(models)} models, 1 epoch on {DATASET}", unit="model") as bar:
                for future in as_completed(futures):
                    row = future.result()
                    rows.append(row)
                    bar.set_postfix_str(f"{row['model']} {row['status']}")
                    bar.update()
        total = time.perf_counter() - start

    table = pd.DataFrame(rows).sort_values("model").reset_index(drop=True)
    failed = int((table["status"] != "pass").sum())
    table["seconds"] = table["seconds"].map("{:.1f}".format)
    table[REPORTED_METRIC] = [f"{v:.4f}" if v is not None and v == v else "-" for v in table[REPORTED_METRIC]]
    table["reason"] = [r if len(r) <= 100 else r[:99] + "…" for r in table["reason"]]
    print(table.to_markdown(index=False, disable_numparse=True))
    print(f"\n{len(table) - failed}/{len(table)} passed in {total:.0f} s ({jobs} job(s), {threads} thread(s) each)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
