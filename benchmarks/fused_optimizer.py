"""Training steps of a benchmark's models with RecBole's optimizer and with ``fused_optimizer: True``.

    python benchmarks/fused_optimizer.py --config properties/benchmark/gowalla_converged.yaml [--labels BPR ...]
        [--steps 20] [--repeats 3] [--out table.csv]

Each label's first seed is built as the benchmark builds it (its config, one thread), twice from the
same initial weights: fused off and on. Both take the same ``--steps`` training batches, drawn once
from its loader: the table gives the median seconds per step (forward, backward, optimizer step) of
the two, alternating ``--repeats`` times so load on a shared machine hits both alike, the loader's
seconds per batch, the epoch those make, and how far apart the two arms' weights end, relative to how
far they moved: ||w_fused - w|| / ||w - w_0|| over all weights (0 for equal updates; Adam divides each
gradient by its running scale, so rounding in near-zero gradients shows up at the size of a step).
"""

import argparse
import statistics
import time

import pandas as pd
import torch

from recbole_mml.benchmark.spec import load_spec, plan_runs
from recbole_mml.quick_start import build_config, build_trainer, prepare_data


def train_steps(trainer, batches, seed):
    """Seconds per step of RecBole's training step (``Trainer._train_epoch``'s body) over ``batches``,
    with the random streams (dropout, a model's own negative sampler) reseeded from ``seed``, so both
    arms draw the same numbers."""
    model, optimizer = trainer.model, trainer.optimizer
    model.train()
    torch.manual_seed(seed)
    if getattr(model, "sampler", None) is not None:
        model.sampler.reseed(seed)
    start = time.perf_counter()
    for interaction in batches:
        optimizer.zero_grad()
        losses = model.calculate_loss(interaction)
        (sum(losses) if isinstance(losses, tuple) else losses).backward()
        optimizer.step()
    return (time.perf_counter() - start) / len(batches)


def measure(run, steps, repeats):
    arms = {}
    for fuse in (False, True):
        config = build_config(run["model"], run["dataset"], config_dict=dict(
            run["config"], fused_optimizer=fuse, torch_num_threads=1, state="ERROR", show_progress=False))
        if not arms:
            dataset, train_data, _, _ = prepare_data(config)
            start = time.perf_counter()
            batches = [b for _, b in zip(range(steps), train_data)]
            loader_s = (time.perf_counter() - start) / len(batches)
        arms[fuse] = build_trainer(config, dataset, train_data)  # seeded: the same initial weights
    start_weights = {n: p.detach().clone() for n, p in arms[False].model.named_parameters()}
    times = {False: [], True: []}
    for fuse, trainer in arms.items():
        train_steps(trainer, batches[:1], seed=0)  # warm-up, outside the timing; both arms take it
    for repeat in range(repeats):
        for fuse, trainer in arms.items():
            times[fuse].append(train_steps(trainer, batches, seed=repeat + 1))
    plain, fused = (dict(t.model.named_parameters()) for t in arms.values())
    apart = sum(((fused[n] - w) ** 2).sum().item() for n, w in plain.items()) ** 0.5
    moved = sum(((w - start_weights[n]) ** 2).sum().item() for n, w in plain.items()) ** 0.5
    off, on = statistics.median(times[False]), statistics.median(times[True])
    n_batches = len(train_data)
    return {"label": run["label"], "learner": config["learner"], "batch": config["train_batch_size"],
            "batches": n_batches, "loader_s": round(loader_s, 4), "step_s": round(off, 4),
            "fused_step_s": round(on, 4), "epoch_s": round(n_batches * (loader_s + off), 1),
            "fused_epoch_s": round(n_batches * (loader_s + on), 1),
            "speedup": round((loader_s + off) / (loader_s + on), 2), "apart_over_moved": f"{apart / moved:.1e}"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a benchmark yaml (properties/benchmark/)")
    parser.add_argument("--labels", nargs="+", help="only these model labels (default: all)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="also write the table as CSV here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = load_spec(args.config)
    firsts = {}
    for run in plan_runs(spec):
        if args.labels is None or run["label"] in args.labels:
            firsts.setdefault(run["label"], run)
    rows = [measure(run, args.steps, args.repeats) for run in firsts.values()]
    table = pd.DataFrame(rows)
    print(f"{args.config}: one thread, {args.steps} steps, median of {args.repeats}; epoch = batches x (loader + step)")
    print(table.to_markdown(index=False))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
