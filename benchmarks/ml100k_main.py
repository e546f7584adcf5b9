"""The main job: MMLMF on ml-100k beside RecBole's BPR, LightGCN and SimpleX, and CCL on MMLMF's backbone.

    python benchmarks/ml100k_main.py            (what ``make run`` does; a few minutes on 2 cores)
    python benchmarks/ml100k_main.py --resume   (keep the runs already finished)

Runs ``properties/benchmark/ml100k_main.yaml`` with the benchmark tool (``run_recbole_mml.py
benchmark``: one subprocess per model, its log in ``<output_dir>/logs/``), then prints one table of
test Recall@10 / NDCG@10 and seconds, best NDCG@10 first, and says whether MMLMF leads. Every model
trains under the same budget (``properties/search/ml-100k/budget.yaml``) at the setting that a search
of the same size on the validation split chose for it (``benchmarks/results/ml100k_search/``);
MMLMF runs with the package defaults, which are that search's best.
"""

import argparse
import os
import subprocess
import sys
import time

import pandas as pd
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "properties", "benchmark", "ml100k_main.yaml")
MAIN_MODEL = "MMLMF"
RUN_FILES = ("results.csv", "results.md")


def setting(entry):
    """What a row was trained with, in a few words: its overrides, or the package defaults."""
    overrides = entry.get("overrides") or {}
    if not overrides:
        return "package defaults"
    parts = []
    for key, value in overrides.items():
        if isinstance(value, float):
            value = f"{value:.3g}"
        elif isinstance(value, list):
            value = "/".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def table(results, spec):
    """Markdown rows, best test NDCG@10 first."""
    entries = {e["label"] if isinstance(e, dict) else e: e if isinstance(e, dict) else {} for e in spec["models"]}
    results = results.sort_values("test_ndcg@10", ascending=False)
    lines = [
        "| model | setting | test Recall@10 | test NDCG@10 | epochs | train s | wall s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in results.to_dict("records"):
        lines.append(
            f"| {row['label']} | {setting(entries.get(row['label'], {}))} | {row['test_recall@10']:.4f} | "
            f"{row['test_ndcg@10']:.4f} | {row['epochs_run']} | {row['train_time_s']:.1f} | {row['wall_time_s']:.1f} |"
        )
    return "\n".join(lines)


def verdict(results):
    """One sentence: does MMLMF lead on test NDCG@10, and by how much."""
    ndcg = results.set_index("label")["test_ndcg@10"]
    if MAIN_MODEL not in ndcg:
        return f"{MAIN_MODEL} did not finish; see the logs."
    others = ndcg.drop(MAIN_MODEL)
    if others.empty:
        return f"{MAIN_MODEL}: test NDCG@10 {ndcg[MAIN_MODEL]:.4f}."
    best = others.idxmax()
    if ndcg[MAIN_MODEL] >= others[best]:
        gap = (ndcg[MAIN_MODEL] / others[best] - 1) * 100
        return f"{MAIN_MODEL} leads: test NDCG@10 {ndcg[MAIN_MODEL]:.4f}, {gap:.1f}% above the next, {best} ({others[best]:.4f})."
    gap = (others[best] / ndcg[MAIN_MODEL] - 1) * 100
    return (f"{MAIN_MODEL} is not first: {best} reaches test NDCG@10 {others[best]:.4f}, "
            f"{gap:.1f}% above {MAIN_MODEL} ({ndcg[MAIN_MODEL]:.4f}).")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=CONFIG, help="benchmark yaml (default: the ml-100k main job)")
    parser.add_argument("--output_dir", default=None, help="overrides the yaml's output_dir")
    parser.add_argument("--resume", action="store_true", help="keep runs already in results.csv")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    out_dir = args.output_dir or os.path.join(ROOT, spec["output_dir"])
    if not args.resume:  # a fresh comparison: the benchmark tool skips runs already in results.csv
        for name in RUN_FILES:
            path = os.path.join(out_dir, name)
            if os.path.isfile(path):
                os.remove(path)
    start = time.perf_counter()
    command = [sys.executable, os.path.join(ROOT, "run_recbole_mml.py"), "benchmark",
               "--config", args.config, "--output_dir", out_dir]
    code = subprocess.run(command, cwd=ROOT).returncode
    csv_path = os.path.join(out_dir, "results.csv")
    if not os.path.isfile(csv_path):
        print(f"no run finished (exit code {code}); see {os.path.join(out_dir, 'logs')}", file=sys.stderr)
        return code or 1
    results = pd.read_csv(csv_path)
    common = spec["common"]
    print()
    print(f"{', '.join(spec['datasets'])}, seed {', '.join(map(str, sorted(results['seed'].unique())))}: every model "
          f"at most {common['epochs']} epochs, early stopping on validation {common['valid_metric']}, test read once "
          f"at the best validation epoch; {len(results)} models in {time.perf_counter() - start:.0f} s "
          f"(train s: training epochs only; wall s: the whole run, data loading and evaluation included).")
    print()
    print(table(results, spec))
    print()
    print(verdict(results))
    return code


if __name__ == "__main__":
    sys.exit(main())
