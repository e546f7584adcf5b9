"""One training epoch of a recbole_mml model against the plain-torch floor, timed in the same run.

    python benchmarks/epoch_vs_floor.py [--dataset gowalla] [--repeats 3] [--threads 1] [--key=value ...]

One full-ranking evaluation of the validation users is timed in the same loop. The floor
(``../shared/bench/floor_epoch.py``: MF + cosine + MML, random ids, no data pipeline, no
training-pair mask) is run for the same sizes (users, items, training pairs, candidates per batch,
batch size), with sparse Adam and with dense Adam. Model epochs and floor epochs alternate,
``--repeats`` times, so load on a shared machine hits both alike; the table reports the median
seconds and the ratio to the sparse floor. Defaults: MMLMF, batch 1024, 100 negatives shared by the
batch, one thread, the author's Gowalla MML setting, on the ``[train, valid, test]`` training part.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import pandas as pd
import torch

from recbole_mml.quick_start import build_config, build_trainer, prepare_data  # applies the compatibility fixes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOOR_SCRIPT = os.path.join(ROOT, "..", "shared", "bench", "floor_epoch.py")
DEFAULTS = ["--model=MMLMF", "--train_batch_size=1024", "--neg_sharing=batch", "--num_negatives=100",
            "--margins=[0.7,0.8,0.9]", "--weights=[0.10,0.15,0.75]", "--neg_weight=700.0",
            "--learning_rate=0.005", "--show_progress=False", "--state=ERROR"]


def floor(sizes, candidates, batch, sparse, shared, threads):
    env = dict(os.environ, SHARED="1" if shared else "0", SPARSE="1" if sparse else "0", THREADS=str(threads))
    args = [sys.executable, FLOOR_SCRIPT, *map(str, sizes), str(candidates), str(batch)]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"epoch_s=([0-9.]+)", out).group(1))


def model_epoch(trainer, train_data, epoch):
    start = time.perf_counter()
    trainer._train_epoch(train_data, epoch)
    return time.perf_counter() - start


def evaluation(trainer, valid_data):
    """Seconds of one full-ranking evaluation of the validation users (training items masked)."""
    start = time.perf_counter()
    trainer.evaluate(valid_data, load_best_model=False)
    return time.perf_counter() - start


def profile(trainer, train_data, top):
    """cProfile of one training epoch: where the seconds above the floor go."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(model_epoch, trainer, train_data, 1)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="gowalla")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--learners", nargs="+", default=["sparse_adam", "adam"])
    parser.add_argument("--out", help="also write the table as CSV here")
    parser.add_argument("--profile", type=int, default=0, metavar="K",
                        help="instead: profile one epoch of the first learner and print the K costliest functions")
    args, overrides = parser.parse_known_args(argv)
    out = os.path.abspath(args.out) if args.out else None  # the runs below work in a temporary folder
    torch.set_num_threads(args.threads)
    data_path = os.path.join(ROOT, "dataset")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        given = {o.split("=", 1)[0] for o in overrides}
        base = [d for d in DEFAULTS if d.split("=", 1)[0] not in given] + overrides
        base += [f"--data_path={data_path}", f"--torch_num_threads={args.threads}"]
        config = build_config(dataset=args.dataset, cmd_args=base)
        dataset, train_data, valid_data, _ = prepare_data(config)
        sizes = (dataset.user_num - 1, dataset.item_num - 1, len(train_data._dataset))
        sharing, n, batch = config["neg_sharing"], config["num_negatives"], config["train_batch_size"]
        candidates = {"pool": config["neg_pool_size"], "in_batch": batch, "mixed": batch + n}.get(sharing, n)
        shared = sharing != "row"
        trainers = {}
        for learner in args.learners:
            cfg = build_config(dataset=args.dataset, cmd_args=base + [f"--learner={learner}"])
            trainers[learner] = build_trainer(cfg, dataset, train_data)
            model_epoch(trainers[learner], train_data, 0)  # warm-up: allocations, first-touch of tables
        if args.profile:
            return profile(trainers[args.learners[0]], train_data, args.profile)
        times = {key: [] for key in [*args.learners, "floor sparse", "floor dense", "evaluation"]}
        for repeat in range(args.repeats):
            times["floor sparse"].append(floor(sizes, candidates, batch, True, shared, args.threads))
            for learner, trainer in trainers.items():
                times[learner].append(model_epoch(trainer, train_data, repeat + 1))
            times["floor dense"].append(floor(sizes, candidates, batch, False, shared, args.threads))
            times["evaluation"].append(evaluation(trainers[args.learners[0]], valid_data))
    floor_sparse = statistics.median(times["floor sparse"])
    for key, values in times.items():
        if key == "evaluation":
            label = f"full-ranking evaluation of {len(valid_data.uid_list)} valid users x {sizes[1]} items"
        else:
            label = f"{config['model']} learner={key}" if key in trainers else f"plain-torch {key} Adam"
        rows.append({"run": label, "epoch_s": round(statistics.median(values), 2),
                     "runs": ", ".join(f"{v:.2f}" for v in values),
                     "over_sparse_floor": round(statistics.median(values) / floor_sparse, 2)})
    table = pd.DataFrame(rows)
    print(f"{args.dataset}: {sizes[2]} training pairs, batch {batch}, {candidates} candidates "
          f"({sharing}), {args.threads} thread(s), median of {args.repeats}")
    print(table.to_markdown(index=False))
    if out:
        table.to_csv(out, index=False)


if __name__ == "__main__":
    main()
