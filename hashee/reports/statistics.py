"""The report's statistics: intervals, paired comparisons and Pareto scores (see :mod:`hashee.core.stats`).

Works on the report's run rows (one per complete run, ``source == "run"``) whose run directory holds
``predictions.npz``: runs without it (older code) are left out of these sections and counted.

- **Intervals**: per (task, method, target) the mean over seeds, its sample std and the 95 % t interval
  of the mean; with one seed, the run's 95 % bootstrap interval over the reported examples.
- Paired comparisons are made at equal *realized* speed-up only (:mod:`hashee.reports.equal_speedup`): two
  methods at the same nominal target run at different speed-ups, so no row here pairs them.
- **Pareto score**: per task and method, the mean gap in points to static truncation's curve at the
  same FLOPs speed-up (static's curve starts at the full model, k = L, speed-up 1).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from hashee.core.stats import Outputs, metric_interval, pareto_front, pareto_score, seed_interval
from hashee.reports.collect import row_contract
from hashee.reports.plots import save_plot
from hashee.runs.results import PREDICTIONS_FILE


def load_outputs(rows: Iterable[dict[str, Any]]) -> dict[str, Outputs]:
    """``{run_dir: Outputs}`` of the runs that kept their per-example predictions."""
    loaded = {}
    for row in rows:
        path = Path(row["run_dir"]) / PREDICTIONS_FILE
        if row.get("source") == "run" and path.is_file():
            loaded[row["run_dir"]] = Outputs.load(str(path))
    return loaded


def by_point(rows: Iterable[dict[str, Any]], outputs: dict[str, Outputs]) -> dict[tuple, dict[int, dict[str, Any]]]:
    """``{(task, method, target): {seed: row}}`` of the runs with outputs."""
    points: dict[tuple, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        if row["run_dir"] in outputs and row.get("source") == "run":
            points[(row["task"], row["method"], row["target"])][row["seed"]] = row
    return points


def interval_rows(points: dict[tuple, dict[int, dict[str, Any]]], outputs: dict[str, Outputs]) -> list[dict[str, Any]]:
    """Mean, std and 95 % interval of every (task, method, target)."""
    table = []
    for (task, method, target), seeds in sorted(points.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        members = list(seeds.values())
        values = [m["primary"] for m in members]
        name = members[0]["primary_metric"]
        if len(values) > 1:
            low, high = seed_interval(values)
            kind = "t over seeds"
        else:
            low, high = members[0].get("primary_ci95") or metric_interval(name, outputs[members[0]["run_dir"]])
            kind = "bootstrap over examples"
        table.append({"task": task, "method": method, "target": target, "seeds": len(values), "metric": name,
                      "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                      "low": low, "high": high, "interval": kind})
    return table


def contract_of_point(seeds: dict[int, dict[str, Any]]) -> Any:
    """The method contract of a point's runs."""
    return row_contract(next(iter(seeds.values())))


def curve_of(points: dict[tuple, dict[int, dict[str, Any]]], outputs: dict[str, Outputs], task: str,
             method: str) -> list[tuple[float, list[Outputs]]]:
    """A method's (FLOPs speed-up, runs) points on a task; a method whose contract ``includes_full_model`` (static
    truncation at k = L is the full model) starts at the full model."""
    mine = [contract_of_point(s) for (t, m, _), s in points.items() if t == task and m == method]
    joins_full = any(contract.includes_full_model for contract in mine)
    curve = []
    for (t, m, _), seeds in points.items():
        if t == task and (m == method or (joins_full and contract_of_point(seeds).full_model)):
            speedup = statistics.fmean(r["flops_speedup"] for r in seeds.values())
            curve.append((speedup, [outputs[r["run_dir"]] for r in seeds.values()]))
    return curve


def pareto_rows(points: dict[tuple, dict[int, dict[str, Any]]], outputs: dict[str, Outputs]) -> list[dict[str, Any]]:
    """Pareto score of every method against the Pareto reference (static truncation: its contract's
    ``pareto_reference``), per task; neither the reference nor the full model is scored."""
    table = []
    for task in sorted({k[0] for k in points}):
        contracts = {m: contract_of_point(s) for (t, m, _), s in points.items() if t == task}
        name_of_reference = next((m for m, c in sorted(contracts.items()) if c.pareto_reference), None)
        reference = [] if name_of_reference is None else curve_of(points, outputs, task, name_of_reference)
        if len(reference) < 2:
            continue
        for method in sorted(m for m, c in contracts.items() if m != name_of_reference and not c.full_model):
            seeds = {len(runs) for _, runs in curve_of(points, outputs, task, method)}
            name = next(r for k, s in points.items() if k[0] == task for r in s.values())["primary_metric"]
            scored = pareto_score(name, curve_of(points, outputs, task, method), reference)
            if scored is not None:
                table.append({"task": task, "method": method, "metric": name, "seeds": max(seeds),
                              "score": scored[0], "low": scored[1], "high": scored[2]})
    return table


def markdown(intervals: list[dict], pareto: list[dict], left_out: int) -> str:
    """The intervals and Pareto sections of report.md."""
    return intervals_markdown(intervals, left_out) + "\n\n" + pareto_markdown(pareto)


def intervals_markdown(intervals: list[dict], left_out: int) -> str:
    """The intervals section: mean, std and 95 % interval of every (task, method, target)."""
    lines = ["## Intervals", "", "95 % interval of the mean over seeds (t); with one seed, the run's bootstrap "
             "interval over the reported examples." + (f" {left_out} run(s) without predictions.npz are not "
                                                        "in these sections." if left_out else ""), "",
             "| task | method | target | seeds | metric | mean | std | 95 % interval | interval of |",
             "|---|---|---:|---:|---|---:|---:|---|---|"]
    lines += [f"| {r['task']} | {r['method']} | {_target(r['target'])} | {r['seeds']} | {r['metric']} | {r['mean']:.4f} | "
              f"{r['std']:.4f} | [{r['low']:.4f}, {r['high']:.4f}] | {r['interval']} |" for r in intervals]
    return "\n".join(lines)


def pareto_markdown(pareto: list[dict]) -> str:
    """The Pareto section: each method's mean gap to static truncation's curve."""
    lines = ["## Pareto score", "", "Mean gap in points to static truncation's quality vs FLOPs speed-up curve "
              "(static from the full model at 1x), over the speed-up range both cover, with its bootstrap 95 % "
              "interval; positive = above static.", "",
              "| task | method | metric | seeds | Pareto score | 95 % interval |", "|---|---|---|---:|---:|---|"]
    lines += [f"| {r['task']} | {r['method']} | {r['metric']} | {r['seeds']} | {r['score']:+.2f} | "
              f"[{r['low']:+.2f}, {r['high']:+.2f}] |" for r in pareto]
    return "\n".join(lines)


def _target(target: float | None) -> str:
    return "-" if target is None else f"{target:g}"


def plot_pareto(task: str, points: dict[tuple, dict[int, dict[str, Any]]], out: Path) -> Path | None:
    """Every point of every method (mean over seeds) against FLOPs speed-up, the Pareto front highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (t, method, _), seeds in points.items():
        if t == task:
            rows = list(seeds.values())
            series[method].append((statistics.fmean(r["flops_speedup"] for r in rows),
                                   statistics.fmean(r["primary"] for r in rows)))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8.4, 4.4))
    for method, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", linestyle=":", label=method)
    front = pareto_front(series)
    ax.plot([p[1] for p in front], [p[2] for p in front], color="black", linewidth=2.5, alpha=0.35,
            marker="o", markersize=12, markerfacecolor="none", label="Pareto front")
    ax.set_xlabel("FLOPs speed-up")
    ax.set_ylabel(next(iter(next(iter(points.values())).values()))["primary_metric"])
    ax.set_title(f"{task}: every operating point, the Pareto front highlighted")
    return save_plot(fig, ax, out / f"{task}_pareto.png")


def statistics_sections(rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Compute every table, write the Pareto plots; returns markdown, tables and image names."""
    outputs = load_outputs(rows)
    points = by_point(rows, outputs)
    left_out = sum(1 for r in rows if r.get("source") == "run" and r["run_dir"] not in outputs)
    tables = {"intervals": interval_rows(points, outputs), "pareto": pareto_rows(points, outputs)}
    images = [p.name for task in sorted({k[0] for k in points}) if (p := plot_pareto(task, points, out))]
    return {"markdown": markdown(**tables, left_out=left_out) if points else "", "tables": tables, "images": images}
