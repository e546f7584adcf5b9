"""results.md (a table of mean ± std per group, the paired tests over seeds and over users) and the
sweep plot."""

import math
import os
from functools import lru_cache

import pandas as pd

from recbole_mml.benchmark.results import read_per_user, sweep_text
from recbole_mml.benchmark.stats import metric_columns, paired_tests, summarize, user_tests


def _fmt(value, digits=4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _fmt_p(value):
    """A p-value to two significant digits (a fixed 3 decimals would print 1e-5 as 0.000)."""
    return _fmt(value) if value is None or math.isnan(value) else f"{value:.2g}"


def format_cell(mean, std, digits=4):
    """``mean ± std``, or the mean alone when std is undefined (one seed)."""
    if isinstance(std, float) and math.isnan(std):
        return _fmt(mean, digits)
    return f"{_fmt(mean, digits)} ± {_fmt(std, digits)}"


def markdown_table(summary, metrics, info=(), digits=4):
    """A markdown table of mean ± std per group; the best mean of each metric column in bold.

    Ties all get bold; the bold marks the highest mean within each data set (metrics are
    higher-is-better, as Recall and NDCG are).
    """
    index_names = list(summary.index.names)
    header = [n if n != "sweep_value" else "N" for n in index_names] + [m.replace("test_", "") for m in metrics]
    header += [{"mean_epoch_time_s": "s/epoch", "epochs_run": "epochs", "wall_time_s": "wall s",
                "train_time_s": "train s", "best_valid_score": "best valid"}.get(c, c) for c in info]
    best = {}
    datasets = summary.index.get_level_values("dataset")
    for m in metrics:
        best[m] = summary[(m, "mean")].groupby(datasets).transform("max")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(index_names) + "---:|" * (len(header) - len(index_names))]
    for i, (key, row) in enumerate(summary.iterrows()):
        key = key if isinstance(key, tuple) else (key,)
        cells = [f"{k:g}" if isinstance(k, float) else str(k) for k in key]
        for m in metrics:
            cell = format_cell(row[(m, "mean")], row[(m, "std")], digits)
            if not math.isnan(row[(m, "mean")]) and row[(m, "mean")] == best[m].iloc[i]:
                cell = f"**{cell}**"
            cells.append(cell)
        for c in info:
            digits_c = 0 if c == "epochs_run" else 1
            cells.append(format_cell(row[(c, "mean")], row[(c, "std")], digits_c))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tests_table(tests):
    swept = tests["sweep_value"].notna().any()
    lines = ["| dataset | model |" + (" N |" if swept else "") + " vs | metric | n | mean diff | t-test p | Wilcoxon p |",
             "|---|---|" + ("---:|" if swept else "") + "---|---|---:|---:|---:|---:|"]
    for _, r in tests.iterrows():
        value = f" {r['sweep_value']:g} |" if swept else ""
        lines.append(
            f"| {r['dataset']} | {r['label']} |{value} {r['baseline']} | {r['metric'].replace('test_', '')} | {r['n']} | "
            f"{_fmt(r['mean_diff'])} | {_fmt_p(r['ttest_p'])} | {_fmt_p(r['wilcoxon_p'])} |"
        )
    return "\n".join(lines)


def user_tests_table(tests):
    """The paired tests over users, one line per model, baseline and metric (see
    :func:`~recbole_mml.benchmark.stats.user_tests`)."""
    swept = tests["sweep_value"].notna().any()
    lines = ["| dataset | model |" + (" N |" if swept else "") + " vs | metric | seeds | users | mean diff | "
             "model ahead | vs ahead | largest t-test p | largest Wilcoxon p |",
             "|---|---|" + ("---:|" if swept else "") + "---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for _, r in tests.iterrows():
        value = f" {r['sweep_value']:g} |" if swept else ""
        lines.append(f"| {r['dataset']} | {r['label']} |{value} {r['baseline']} | {r['metric']} | {r['seeds']} | "
                     f"{r['users']} | {r['mean_diff']:+.4f} | {r['ahead']} | {r['behind']} | {_fmt_p(r['max_ttest_p'])} | "
                     f"{_fmt_p(r['max_wilcoxon_p'])} |")
    return "\n".join(lines)


def sweep_plot(results, path, metrics, sweep_key="num_negatives"):
    """Each metric against the swept value (log x), one line per label with ± std bars, per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(results["dataset"]))
    fig, axes = plt.subplots(len(datasets), len(metrics), figsize=(4.2 * len(metrics), 3.4 * len(datasets)),
                             squeeze=False)
    for r, dataset in enumerate(datasets):
        data = results[results["dataset"] == dataset]
        for c, metric in enumerate(metrics):
            ax = axes[r][c]
            for label, group in data.groupby("label", sort=False):
                stats = group.groupby("sweep_value")[metric].agg(["mean", "std"]).sort_index()
                ax.errorbar(stats.index.astype(float), stats["mean"], yerr=stats["std"].fillna(0.0),
                            marker="o", capsize=3, label=label)
            ax.set_xscale("log")
            ax.set_xlabel(sweep_key)
            ax.set_ylabel(metric.replace("test_", ""))
            ax.set_title(dataset)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary_parts(spec, results, per_user=None):
    """The seeds' table (mean ± std per group) and the paired tests of each label against each of the
    spec's baselines that has rows, over seeds and, where ``per_user(run_id)`` finds both runs' per-user
    scores, over the users of each seed: markdown blocks shared by results.md and BENCHMARKS.md."""
    metrics = spec.get("metrics")
    metrics = [f"test_{m}" for m in metrics] if metrics else metric_columns(results)
    info = [c for c in ("epochs_run", "mean_epoch_time_s", "wall_time_s") if c in results]
    parts = [markdown_table(summarize(results, metrics + info), metrics, info)]
    baselines = [b for b in spec.get("baseline") or [] if (results["label"] == b).any()]
    if baselines:
        earlier = [results[~results["label"].isin(baselines[:i])] for i in range(len(baselines))]  # no mirrored pairs
        tests = pd.concat([paired_tests(rows, b, m) for rows, b in zip(earlier, baselines) for m in metrics],
                          ignore_index=True)
        parts += [f"Paired tests against {', '.join(baselines)} over seeds: p-values of scipy.stats.ttest_rel and "
                  "wilcoxon on the per-seed differences; n/a where a test is undefined (fewer than two seeds, or no "
                  "difference).", tests_table(tests)]
        if per_user is not None:
            per_user = lru_cache(maxsize=None)(per_user)  # each run's file is read once, not once per pair
            users = pd.concat([user_tests(rows, b, metrics, per_user) for rows, b in zip(earlier, baselines)],
                              ignore_index=True)
            if len(users):
                parts += ["Paired tests over the test users of each seed both runs kept per-user scores for "
                          "(`per_user/<run>.csv.gz`): scipy.stats.ttest_rel and wilcoxon (zero differences dropped) "
                          "per seed; a seed counts for a side when that side is ahead with t-test p < 0.05. With one "
                          "seed these are the only tests there are.", user_tests_table(users)]
    return parts, metrics


def under_way_note(saved_epoch, left_min, saved_min=0.0):
    """Where a run stopped with a saved state stands: the epoch it resumes at (where known) and what is
    left of its estimate, or the minutes it has spent where there is no estimate."""
    where = "" if pd.isna(saved_epoch) else f": resumes at epoch {saved_epoch:.0f}"
    spent = f"about {left_min:.0f} min left" if pd.notna(left_min) else f"{saved_min:.0f} min spent"
    return f"under way{where}, {spent}"


def seed_text(run):
    """A pending run's seed, with where it stands if it was stopped with a saved state (see
    :func:`~recbole_mml.benchmark.results.pending_runs`)."""
    if not getattr(run, "under_way", False):
        return str(run.seed)
    return f"{run.seed} ({under_way_note(run.saved_epoch, run.left_min, run.saved_min)})"


def pending_table(pending):
    """The runs not run yet, one line per setting: its seeds (with where a run under way stands) and
    the estimated wall minutes of each (from the finished seeds of the same setting), then what is
    left of them in all; empty when nothing is pending."""
    if not len(pending):
        return ""
    lines = ["| dataset | label | seeds | est. wall min each | estimated from |", "|---|---|---|---:|---|"]
    for (dataset, label, value), group in pending.groupby(["dataset", "label", sweep_text(pending["sweep_value"])],
                                                          sort=False):
        name = f"{label}, {group.sweep_key.iloc[0]}={value}" if value else label
        est, n = group.est_min.iloc[0], group.est_runs.iloc[0]
        lines.append(f"| {dataset} | {name} | {', '.join(map(seed_text, group.itertuples()))} | "
                     f"{'not measured' if pd.isna(est) else f'{est:.0f}'} | "
                     f"{f'{n} finished seed(s)' if n else 'no finished seed'} |")
    known = pending.left_min.dropna()
    lines.append(f"\n{len(pending)} runs; those with an estimate ({len(known)}) need about "
                 f"{known.sum() / 60:.1f} more hours of one thread.")
    return "\n".join(lines)


def write_report(spec, results, out_dir, pending=None):
    """results.md (and sweep_<key>.png for a sweep) from the rows of results.csv; ``pending`` (see
    :func:`~recbole_mml.benchmark.results.pending_runs`) lists what is not run yet."""
    (table, *tests), metrics = summary_parts(spec, results, lambda run_id: read_per_user(out_dir, run_id))
    seeds = sorted(results["seed"].unique())
    parts = [
        "# Benchmark results",
        "",
        f"{len(results)} runs; seeds {', '.join(map(str, seeds))}; mean ± std over seeds (std needs two seeds); "
        "best mean per metric and data set in bold. Times are seconds on the machine that ran them.",
        "",
        table,
    ]
    if tests:
        parts += ["", "## Paired tests", "", *"\n\n".join(tests).splitlines()]
    if pending is not None and len(pending):
        parts += ["", "## Not run yet", "", *pending_table(pending).splitlines()]
    sweep = spec.get("sweep")
    if sweep and results["sweep_value"].notna().any():
        path = spec.get("plot") or os.path.join(out_dir, f"sweep_{sweep['key']}.png")
        sweep_plot(results, path, metrics, sweep["key"])
        parts += ["", f"Plot: `{path}`"]
    with open(os.path.join(out_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(parts) + "\n")
