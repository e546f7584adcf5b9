"""Training steps of a benchmark's models with a speed switch off and on (``fused_optimizer``,
``csr_adjacency``, ``enmf_matmul``, ``retain_freed_memory``).

    python benchmarks/speed_switch.py --config properties/benchmark/gowalla_converged.yaml
        [--key fused_optimizer | csr_adjacency | enmf_matmul | retain_freed_memory] [--labels BPR ...]
        [--steps 20] [--repeats 3] [--out table.csv]

Each switch promises the same training in less time. Each label's first seed is built as the
benchmark builds it (its config, one thread), twice from the same initial weights: the switch off
and on (``retain_freed_memory`` holds for the whole process: it is set before each arm's timing, and
off means glibc's starting values). Both take the same ``--steps`` training batches, drawn once from
its loader: the table gives the median seconds per step (forward, backward, optimizer step) of the
two, alternating ``--repeats`` times so load on a shared machine hits both alike, the loader's
seconds per batch, the epoch those make, and how far apart the two arms' weights end, relative to
how far they moved: ||w_on - w_off|| / ||w_off - w_0|| over all weights (0 for equal updates; Adam
divides each gradient by its running scale, so rounding in near-zero gradients shows up at the size
of a step). Before training, from the same weights, each arm scores ``--eval-batches`` full-ranking
batches of valid users: seconds for a whole evaluation (the first batch, which fills the model's
evaluation caches, plus the later ones at the sampled later batches' mean; the model's scoring only,
not the top-k collection) and how far apart the scores are, relative to the largest.
"""

import argparse
import statistics
import time

import pandas as pd
import torch

from recbole_mml.benchmark.spec import load_spec, plan_runs
from recbole_mml.fast_paths import FAST_PATH_KEYS
from recbole_mml.memory import retain_freed_memory
from recbole_mml.quick_start import build_config, build_trainer, prepare_data

PROCESS_SWITCHES = {"retain_freed_memory": retain_freed_memory}  # set for the process before each arm's timing
SWITCHES = ("fused_optimizer",) + FAST_PATH_KEYS + tuple(PROCESS_SWITCHES)


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


@torch.no_grad()
def score_batches(model, batches):
    """Seconds of each batch's full-ranking scores (``full_sort_predict``), with the model's evaluation
    caches emptied first (the first batch fills them: a graph's propagated tables), and the scores."""
    model.train()
    model.eval()  # recbole_mml's models drop their evaluation cache on a mode change
    for name in getattr(model, "other_parameter_name", ()):
        if name.startswith("restore_"):  # RecBole's (LightGCN's propagated tables), emptied by each training step
            setattr(model, name, None)
    seconds, scores = [], []
    for batch in batches:
        start = time.perf_counter()
        scores.append(model.full_sort_predict(batch[0]))
        seconds.append(time.perf_counter() - start)
    return seconds, scores


def evaluation_seconds(seconds, n_batches):
    """A whole evaluation's scoring: the first batch as timed, every later one as the later sampled batches' mean."""
    later = seconds[1:] or seconds
    return seconds[0] + (n_batches - 1) * statistics.mean(later)


def enter_arm(key, switch):
    """Set a process-wide switch for the arm about to be timed (the others live in each arm's model and trainer)."""
    if key in PROCESS_SWITCHES:
        PROCESS_SWITCHES[key](switch)


def compare_scoring(arms, batches, n_batches, repeats, key):
    """Median seconds of each arm's whole evaluation (alternating; :func:`evaluation_seconds`), and how
    far apart their scores are, relative to the largest score: both arms still hold the same initial weights."""
    times = {False: [], True: []}
    for _ in range(repeats):
        for switch, trainer in arms.items():
            enter_arm(key, switch)
            seconds, scores = score_batches(trainer.model, batches)
            times[switch].append(evaluation_seconds(seconds, n_batches))
            if switch:
                apart = max((a - b).abs().max().item() for a, b in zip(scores, reference))
                largest = max(b.abs().max().item() for b in reference)
            else:
                reference = scores
    return statistics.median(times[False]), statistics.median(times[True]), apart / largest


def measure(run, key, steps, repeats, eval_batches):
    arms = {}
    for switch in (False, True):
        config = build_config(run["model"], run["dataset"], config_dict=dict(
            run["config"], **{key: switch}, torch_num_threads=1, state="ERROR", show_progress=False))
        if not arms:
            dataset, train_data, valid_data, _ = prepare_data(config)
            start = time.perf_counter()
            batches = [b for _, b in zip(range(steps), train_data)]
            loader_s = (time.perf_counter() - start) / len(batches)
            eval_sample = [b for _, b in zip(range(eval_batches), valid_data)]
        arms[switch] = build_trainer(config, dataset, train_data)  # seeded: the same initial weights
    eval_off, eval_on, scores_apart = compare_scoring(arms, eval_sample, len(valid_data), repeats, key)
    start_weights = {n: p.detach().clone() for n, p in arms[False].model.named_parameters()}
    times = {False: [], True: []}
    for switch, trainer in arms.items():
        enter_arm(key, switch)
        train_steps(trainer, batches[:1], seed=0)  # warm-up, outside the timing; both arms take it
    for repeat in range(repeats):
        for switch, trainer in arms.items():
            enter_arm(key, switch)
            times[switch].append(train_steps(trainer, batches, seed=repeat + 1))
    plain, switched = (dict(t.model.named_parameters()) for t in arms.values())
    apart = sum(((switched[n] - w) ** 2).sum().item() for n, w in plain.items()) ** 0.5
    moved = sum(((w - start_weights[n]) ** 2).sum().item() for n, w in plain.items()) ** 0.5
    off, on = statistics.median(times[False]), statistics.median(times[True])
    n_batches = len(train_data)
    return {"label": run["label"], "learner": config["learner"], "batch": config["train_batch_size"],
            "batches": n_batches, "loader_s": round(loader_s, 4), "step_s": round(off, 4),
            "on_step_s": round(on, 4), "epoch_s": round(n_batches * (loader_s + off), 1),
            "on_epoch_s": round(n_batches * (loader_s + on), 1),
            "speedup": round((loader_s + off) / (loader_s + on), 2), "apart_over_moved": f"{apart / moved:.1e}",
            "eval_batches": len(valid_data), "eval_s": float(f"{eval_off:.3g}"),
            "on_eval_s": float(f"{eval_on:.3g}"), "scores_apart": f"{scores_apart:.1e}"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a benchmark yaml (properties/benchmark/)")
    parser.add_argument("--key", choices=SWITCHES, default="fused_optimizer", help="the switch to compare off and on")
    parser.add_argument("--labels", nargs="+", help="only these model labels (default: all)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-batches", type=int, default=3, help="full-ranking batches of valid users timed")
    parser.add_argument("--out", help="also write the table as CSV here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = load_spec(args.config)
    firsts = {}
    for run in plan_runs(spec):
        if args.labels is None or run["label"] in args.labels:
            firsts.setdefault(run["label"], run)
    rows = [measure(run, args.key, args.steps, args.repeats, args.eval_batches) for run in firsts.values()]
    table = pd.DataFrame(rows)
    print(f"{args.config}, {args.key} off and on: one thread, {args.steps} steps and {args.eval_batches} "
          f"evaluation batches, median of {args.repeats}; epoch = batches x (loader + step), evaluation = the batches' scoring")
    print(table.to_markdown(index=False))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
