"""The report's plots of quality against speed-up and of HashEE's exit layers, and the finish every report plot
shares (:func:`save_plot`: grid, legend outside the axes, tight layout, PNG, figure closed)."""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from hashee.reports.collect import row_contract


def save_plot(fig: Any, ax: Any, path: Path) -> Path:
    """Grid, a legend right of the axes (it never hides a point), save at 110 dpi, close; returns ``path``."""
    import matplotlib.pyplot as plt

    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_task(task: str, table: list[dict[str, Any]], axis: str, out: Path) -> Path | None:
    """Primary metric vs a speed-up axis, one line per method, the full model as a dashed reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table if r["task"] == task and r[axis] is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8.4, 4.4))
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_method[r["method"]].append(r)
    for method, members in sorted(by_method.items()):
        members.sort(key=lambda r: r[axis])
        reference = row_contract(members[0]).reference_label
        if reference is not None:  # no operating point: one quality, drawn across
            ax.axhline(statistics.fmean(m["primary_mean"] for m in members), color="black", linestyle="--",
                       linewidth=1, label=reference)
            continue
        ax.errorbar([m[axis] for m in members], [m["primary_mean"] for m in members],
                    yerr=[m["primary_std"] or 0.0 for m in members], marker="o", capsize=3, label=method)
    ax.set_xlabel("FLOPs speed-up" if axis == "flops_speedup" else "measured wall-clock speed-up")
    ax.set_ylabel(rows[0]["primary_metric"])
    ax.set_title(f"{task}: {rows[0]['primary_metric']} vs {'FLOPs' if axis == 'flops_speedup' else 'measured'} speed-up")
    return save_plot(fig, ax, out / f"{task}_{axis}.png")


def exit_histogram_panels(rows: list[dict[str, Any]]) -> dict[tuple[str, float | None], dict[str, list[int]]]:
    """HashEE training exit histograms grouped into panels: (task, target) -> {method label: counts}."""
    panels: dict[tuple[str, float | None], dict[str, list[int]]] = defaultdict(dict)
    for row in rows:
        if row["exit_histogram"] and row_contract(row).token_exits:
            panels[(row["task"], row["target"])].setdefault(row["method"], row["exit_histogram"])
    return dict(panels)


def plot_exit_histograms(rows: list[dict[str, Any]], out: Path) -> Path | None:
    """Training exit-layer histograms: a panel per task and target, a bar per hash (same colour everywhere)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = exit_histogram_panels(rows)
    if not panels:
        return None
    tasks = sorted({task for task, _ in panels})
    targets = sorted({target for _, target in panels}, key=lambda t: (t is None, t or 0.0))
    methods = sorted({m for members in panels.values() for m in members})
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    depth = max(len(counts) for members in panels.values() for counts in members.values())
    fig, axes = plt.subplots(len(tasks), len(targets), figsize=(3.6 * len(targets) + 0.4, 3.0 * len(tasks) + 1.0),
                             sharey=True, squeeze=False)
    for (r, task), (c, target) in itertools.product(enumerate(tasks), enumerate(targets)):
        ax, members = axes[r][c], panels.get((task, target), {})
        width = 0.8 / max(1, len(members))
        for i, (method, counts) in enumerate(sorted(members.items())):
            total = sum(counts) or 1
            ax.bar([layer + 1 + i * width - 0.4 + width / 2 for layer in range(len(counts))],
                   [n / total for n in counts], width=width, color=colours[method])
        ax.set_xticks(range(1, depth + 1))
        ax.set_xlim(0.5, depth + 0.5)
        ax.set_title(f"{task}, target {target:g}x" if target is not None else task, fontsize=10)
        ax.set_xlabel("exit layer")
        ax.grid(alpha=0.3, axis="y")
        if c == 0:
            ax.set_ylabel("share of training tokens")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[m]) for m in methods]
    fig.legend(handles, methods, fontsize=8, loc="lower center", ncol=min(len(methods), 5))
    fig.suptitle("HashEE: training tokens per exit layer")
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
    path = out / "exit_histograms.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
