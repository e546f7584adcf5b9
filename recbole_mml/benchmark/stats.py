"""Statistics over seeds: mean, sample std and count per group, and paired tests against a baseline."""

import math

import numpy as np
import pandas as pd

from recbole_mml.benchmark.results import INFO_COLUMNS


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
