"""Statistics over seeds (mean, sample std and count per group, paired tests against a baseline) and
over the test users of one seed (paired tests of two runs' per-user scores)."""

import math

import numpy as np
import pandas as pd

from recbole_mml.benchmark.results import INFO_COLUMNS, sweep_text


def metric_columns(results):
    return [c for c in results.columns if c.startswith("test_")]


def group_columns(results):
    """Rows that differ only by seed form one group: (dataset, label) plus the swept value if any."""
    cols = ["dataset", "label"]
    if "sweep_value" in results and results["sweep_value"].notna().any():
        cols.append("sweep_value")
    return cols


def summarize(results, columns=None):
    """Mean, sample std (ddof=1; NaN for one seed) and n per group and column."""
    columns = columns or metric_columns(results) + [c for c in INFO_COLUMNS if c in results]
    grouped = results.groupby(group_columns(results), sort=False)[columns]
    summary = grouped.agg(["mean", "std", "count"])
    return summary


def paired_tests(results, baseline, metric):
    """Each label against ``baseline`` on ``metric``, paired by seed within (dataset[, swept value]).

    Returns one row per (dataset, label[, swept value]): n pairs, mean difference, and the p-values of
    scipy.stats.ttest_rel and wilcoxon (NaN where a test is undefined: fewer than two pairs, or
    all differences zero).
    """
    from scipy import stats

    swept = "sweep_value" in group_columns(results)
    keys = ["dataset", "seed"] + (["sweep_value"] if swept else [])
    base = results[results["label"] == baseline][keys + [metric]].rename(columns={metric: "base"})
    rows = []
    groups = ["dataset", "label"] + (["sweep_value"] if swept else [])
    for key, group in results[results["label"] != baseline].groupby(groups, sort=False):
        dataset, label = key[0], key[1]
        value = key[2] if swept else math.nan
        paired = group[keys + [metric]].merge(base, on=keys)
        diff = (paired[metric] - paired["base"]).to_numpy(dtype=float)
        t_p = w_p = math.nan
        if len(diff) >= 2 and np.any(diff != 0):
            if np.std(diff) > 0:
                t_p = float(stats.ttest_rel(paired[metric], paired["base"]).pvalue)
            w_p = float(stats.wilcoxon(diff).pvalue)
        rows.append({"dataset": dataset, "label": label, "sweep_value": value, "baseline": baseline, "metric": metric, "n": len(diff),
                     "mean_diff": float(diff.mean()) if len(diff) else math.nan, "ttest_p": t_p, "wilcoxon_p": w_p})
    return pd.DataFrame(rows, columns=["dataset", "label", "sweep_value", "baseline", "metric", "n", "mean_diff", "ttest_p",
                                       "wilcoxon_p"])


def paired_user_test(a, b, metrics):
    """Paired t-test and Wilcoxon (zero differences dropped) of two runs' per-user scores (frames with
    ``user_id`` and one column per metric) over the users both scored; one dict per metric."""
    from scipy import stats

    both = a.merge(b, on="user_id", suffixes=("_a", "_b"))
    rows = []
    for metric in metrics:
        x, y = both[f"{metric}_a"], both[f"{metric}_b"]
        diff = x - y
        differs = bool((diff != 0).any())
        rows.append({"metric": metric, "users": len(both), "a_mean": float(x.mean()), "b_mean": float(y.mean()),
                     "diff": float(diff.mean()),
                     "ttest_p": float(stats.ttest_rel(x, y).pvalue) if differs else math.nan,
                     "wilcoxon_p": float(stats.wilcoxon(diff[diff != 0]).pvalue) if differs else math.nan})
    return rows


USER_TEST_COLUMNS = ["dataset", "label", "sweep_value", "baseline", "metric", "seeds", "users", "mean_diff",
                     "ahead", "behind", "max_ttest_p", "max_wilcoxon_p"]


def user_tests(results, baseline, metrics, per_user, alpha=0.05):
    """Each label against ``baseline`` over the test users of every seed (and swept value) both ran.

    ``per_user(run_id)`` gives a run's per-user scores or None (runs that kept none are left out).
    One row per (dataset, label[, swept value], metric): the seeds tested, the mean over them of the
    per-user mean difference, on how many seeds the label is ahead and behind at paired t-test
    p < ``alpha``, and the largest t-test and Wilcoxon p. With one seed this is the only test there is.
    """
    results = results.assign(sweep=sweep_text(results["sweep_value"]) if "sweep_value" in results else "")
    base = {(r.dataset, r.seed, r.sweep): r.run_id for r in results[results["label"] == baseline].itertuples()}
    names = [m.replace("test_", "") for m in metrics]
    per_seed = []
    for row in results[results["label"] != baseline].itertuples():
        b_id = base.get((row.dataset, row.seed, row.sweep))
        a, b = per_user(row.run_id), per_user(b_id) if b_id else None
        if a is None or b is None:
            continue
        for test in paired_user_test(a, b, [m for m in names if m in a and m in b]):
            per_seed.append({"dataset": row.dataset, "label": row.label, "sweep": row.sweep,
                             "sweep_value": getattr(row, "sweep_value", math.nan), **test})
    if not per_seed:
        return pd.DataFrame(columns=USER_TEST_COLUMNS)
    per_seed = pd.DataFrame(per_seed)
    significant = per_seed["ttest_p"] < alpha
    per_seed = per_seed.assign(ahead=significant & (per_seed["diff"] > 0), behind=significant & (per_seed["diff"] < 0))
    out = per_seed.groupby(["dataset", "label", "sweep", "metric"], sort=False).agg(
        sweep_value=("sweep_value", "first"), seeds=("diff", "size"), users=("users", "mean"),
        mean_diff=("diff", "mean"), ahead=("ahead", "sum"), behind=("behind", "sum"),
        max_ttest_p=("ttest_p", "max"), max_wilcoxon_p=("wilcoxon_p", "max")).reset_index()
    return out.assign(baseline=baseline, users=out["users"].round().astype(int))[USER_TEST_COLUMNS]
