"""Epoch time and quality against the number of negatives N, on ml-100k, all in one run.

MMLMF (MML) and MMLSimpleX (trained with CCL: the same model, loss and settings as RecBole's SimpleX)
draw their N negatives inside the model, per row or shared by the batch; RecBole's SimpleX gets
them from RecBole's pairwise loader, which copies each positive N times. All models see 2048
positives per batch (RecBole's SimpleX counts the copies in train_batch_size, so it gets
2048 * N rows) and train the same number of epochs. The plain-torch floor
(shared/bench/floor_epoch.py: MF + cosine + MML, no data pipeline) is timed in the same run, since
these machines are shared and noisy: compare ratios, not seconds. Everything runs on one torch
thread, so a busy second core does not make threads wait for each other.

    python benchmarks/negatives_speed.py [--epochs 5] [--negatives 10 100 1000] [--out speed.csv]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import pandas as pd

from recbole.utils import init_seed
from recbole_mml.quick_start import build_config, prepare_data  # applies the compatibility fixes
from recbole_mml.registry import get_model, get_trainer

FLOOR_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench", "floor_epoch.py")
BATCH = 2048
COMMON = {"learning_rate": 0.005, "show_progress": False, "metrics": ["Recall", "NDCG"], "topk": [20],
          "valid_metric": "NDCG@20", "state": "WARNING", "reproducibility": True, "torch_num_threads": 1}


def run_case(model, n, extra, epochs):
    """Train ``epochs`` epochs without validation; return mean epoch seconds and test metrics."""
    config = build_config(model, "ml-100k", config_dict=dict(COMMON, epochs=epochs, **extra))
    init_seed(config["seed"], config["reproducibility"])
    _, train_data, _, test_data = prepare_data(config)
    init_seed(config["seed"], config["reproducibility"])
    net = get_model(model)(config, train_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], model)(config, net)
    times = []
    train_epoch = trainer._train_epoch

    def timed(*args, **kwargs):
        start = time.perf_counter()
        out = train_epoch(*args, **kwargs)
        times.append(time.perf_counter() - start)
        return out

    trainer._train_epoch = timed
    trainer.fit(train_data, None, verbose=False, saved=False)
    result = trainer.evaluate(test_data, load_best_model=False)
    return sum(times) / len(times), float(result["recall@20"]), float(result["ndcg@20"])


def floor(n, shared):
    """Seconds per epoch of the plain-torch floor on ml-100k-sized random data."""
    env = dict(os.environ, SHARED="1" if shared else "0", OMP_NUM_THREADS="1")  # one thread, as the models
    out = subprocess.run([sys.executable, FLOOR_SCRIPT, "944", "1683", "80000", str(n), str(BATCH)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"epoch_s=([0-9.]+)", out).group(1))


def cases(n):
    """(label, negatives, model, overrides): the same CCL settings for both SimpleX implementations."""
    ours = {"num_negatives": n, "train_batch_size": BATCH}
    ccl = {"gamma": 0.5, "dropout_prob": 0.1, "aggregator": "mean", "reg_weight": 0.0}
    mml = dict(ours, margins=[0.3, 0.5, 0.7], weights=[0.10, 0.15, 0.75], neg_weight=100.0)  # ml-100k margins
    for sharing in ("row", "batch"):
        yield "MMLMF (MML)", sharing, "MMLMF", dict(mml, neg_sharing=sharing)
    # the floor keeps sampled training positives as negatives: so does this row
    yield "MMLMF (MML), positives not excluded", "batch", "MMLMF", dict(mml, neg_sharing="batch",
                                                                       neg_exclude_positives=False)
    for sharing in ("row", "batch"):
        yield "MMLSimpleX (CCL)", sharing, "MMLSimpleX", dict(
            ours, **ccl, neg_sharing=sharing, loss_type="CCL", ccl_margin=0.5, neg_weight=10.0)
    yield "RecBole SimpleX (CCL)", "loader", "SimpleX", dict(
        ccl, margin=0.5, negative_weight=10, train_batch_size=BATCH * n,
        train_neg_sample_args={"distribution": "uniform", "sample_num": n, "alpha": 1.0, "dynamic": False,
                               "candidate_num": 0})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--negatives", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--out", default=None, help="also write the table as CSV here")
    parser.add_argument("--models", nargs="+", default=None, help="only the rows whose model label starts so")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # checkpoints and logs stay out of the working tree
        for n in args.negatives:
            for label, sharing, model, extra in cases(n):
                if args.models and not any(label.startswith(m) for m in args.models):
                    continue
                epoch_s, recall, ndcg = run_case(model, n, extra, args.epochs)
                rows.append({"N": n, "model": label, "negatives": sharing, "epoch_s": epoch_s,
                             "recall@20": recall, "ndcg@20": ndcg})
                print(rows[-1], flush=True)
            for shared in (True, False):
                if shared or n <= 100:  # the per-row floor materialises B x N x K: minutes at N = 1000
                    rows.append({"N": n, "model": "plain-torch floor (MF, MML)", "negatives": "batch" if shared else "row",
                                 "epoch_s": floor(n, shared)})
    table = pd.DataFrame(rows)
    simplex = table[table.model.str.startswith("RecBole")].set_index("N").epoch_s
    if len(simplex):
        table["speedup_vs_RecBole_SimpleX"] = [simplex.get(n, float("nan")) / t for n, t in zip(table.N, table.epoch_s)]
    print(table.to_markdown(index=False, floatfmt=".4f"))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
