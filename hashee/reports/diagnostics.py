"""The report's per-exit section: each exit head's metric on its own, and the heads that learned nothing.

Reads ``method_info.exit_diagnostics`` of every complete run (see :mod:`hashee.experiments.diagnostics`): a table
of every head's primary metric on validation and on the reported split, with the heads that are not
significantly better than the trivial predictor on validation flagged (by the test that fits the primary
metric), and one plot per task (metric per layer on the reported split, one line per method, the trivial
predictor as a dashed line: the predictor the test compared against where it tested the primary metric,
else the majority class or training mean).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from hashee.reports.collect import row_contract
from hashee.reports.plots import save_plot

FLAG = "**not above trivial**"


def head_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (run, head) from report rows that carry ``exit_diagnostics``."""
    rows = []
    for run in runs:
        diagnostics = run.get("exit_diagnostics") or {}
        if not diagnostics.get("heads"):
            continue
        metric = run["primary_metric"]
        trivial, trivial_name = trivial_reference(diagnostics, metric)
        for head in diagnostics["heads"]:
            rows.append({"task": run["task"], "method": run["method"], "target": run["target"], "seed": run["seed"],
                         "layer": head["layer"], "metric": metric, "val": head["val"].get(metric),
                         "test": head["test"].get(metric), "p_value": head["p_value_vs_trivial"],
                         "degenerate": head["degenerate"], "trivial": trivial,
                         "multi_head": len(diagnostics["heads"]) > 1, "trivial_name": trivial_name,
                         "per_target": row_contract(run).heads_per_target})
    return rows


def trivial_reference(diagnostics: dict[str, Any], metric: str) -> tuple[float | None, str]:
    """The trivial predictor's primary metric on the reported split and its name: the predictor the test compared
    against when the test was on the primary metric (e.g. all-positive for F1), else the majority class (mean)."""
    if diagnostics.get("tested_metric") == metric and "compared_trivial" in diagnostics:
        return diagnostics["compared_trivial"]["test"], diagnostics["compared_predictor"]
    return diagnostics["trivial"]["test"].get(metric), diagnostics.get("trivial_predictor", "trivial predictor")


def series_key(row: dict[str, Any]) -> str:
    """A line of the plot: a method by name, but a single head trained per target (HashEE: its contract's
    ``heads_per_target``) by name and target."""
    if row["multi_head"] or not row["per_target"] or row["target"] is None:
        return row["method"]
    return f"{row['method']} @{row['target']:g}x"


def shared_heads(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeats of one trained model's heads (the same seed's heads at several targets of a method whose
    training ignores the target are the same heads): one row per (task, series, layer, seed, value)."""
    seen, unique = set(), []
    for row in rows:
        key = (row["task"], series_key(row), row["layer"], row["seed"], row["val"], row["test"])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def markdown_section(rows: list[dict[str, Any]]) -> str:
    """Per head: validation and reported-split metric (mean over seeds) and how many seeds flag it."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in shared_heads(rows):
        groups[(row["task"], series_key(row), row["layer"])].append(row)
    lines = ["## Exit heads on their own", "",
             "Every example read at one head (validation / reported split, mean over seeds). A head is flagged "
             "when on validation its primary metric is not significantly better than the trivial predictor's, "
             "one-sided 5 %: accuracy against the majority class (binomial), MCC against 0 (permutation), "
             "F1 against the all-positive predictor (paired bootstrap), any other classification metric by the "
             "accuracy test, regression by Spearman against 0.", "",
             "| task | method | layer | metric | val | reported | trivial (reported) | seeds flagged |",
             "|---|---|---:|---|---:|---:|---:|---|"]
    for (task, series, layer), members in sorted(groups.items()):
        flagged = sum(m["degenerate"] for m in members)
        mark = f"{flagged}/{len(members)} {FLAG}" if flagged else f"0/{len(members)}"
        lines.append(f"| {task} | {series} | {layer} | {members[0]['metric']} | "
                     f"{statistics.fmean(m['val'] for m in members):.4f} | {statistics.fmean(m['test'] for m in members):.4f} | "
                     f"{members[0]['trivial']:.4f} | {mark} |")
    return "\n".join(lines)


def plot_task_heads(task: str, rows: list[dict[str, Any]], out: Path) -> Path | None:
    """Metric per exit layer on the reported split, one line per method; trivial predictor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in shared_heads(rows) if r["task"] == task]
    if not rows:
        return None
    by_series: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_series[series_key(row)][row["layer"]].append(row["test"])
    fig, ax = plt.subplots(figsize=(8.4, 4.4))
    for series, layers in sorted(by_series.items()):
        xs = sorted(layers)
        ax.plot(xs, [statistics.fmean(layers[x]) for x in xs], marker="o", label=series)
    ax.axhline(rows[0]["trivial"], color="grey", linestyle="--", linewidth=1, label=rows[0]["trivial_name"])
    ax.set_xlabel("exit layer (every example exits there)")
    ax.set_ylabel(rows[0]["metric"])
    ax.set_title(f"{task}: each exit head on its own (reported split)")
    return save_plot(fig, ax, out / f"{task}_exit_heads.png")
