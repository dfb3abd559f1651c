"""The report's headline: methods compared at the same realized FLOPs speed-up (:mod:`hashee.core.equal_speedup`).

Every method with an operating point is a curve: per seed, its runs' points (one per target) on the reported
split. At each reference speed-up (1.5x, 2x, 3x, and every HashEE point: the mean realized speed-up over seeds of
each HashEE configuration and target), each method is read off its curve; a method whose curve does not reach the
reference (no seed does) is "not reached". Per task and reference:

- **Headline**: each method's metric (mean over the seeds that reach it), the best method, and every other method
  minus the best, with a two-level bootstrap 95 % interval (examples and seeds); "tie" where it includes 0.
- **HashEE against each baseline**: every HashEE variant minus every other method reached there.

The full model (no operating point) is a 1x reference, not a curve.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from hashee.core.equal_speedup import AT_POINT, Mix, Point, compare, mix_at, mixed, value
from hashee.reports.collect import row_contract
from hashee.runs.results import PREDICTIONS_FILE

REFERENCES = (1.5, 2.0, 3.0)


@lru_cache(maxsize=None)
def load_point(path: str) -> Point:
    """A run's point, read once however many tables use it (curves, the focal method's operating points)."""
    return Point.load(path)


def focal_labels(rows: list[dict[str, Any]]) -> set[str]:
    """The labels of the focal method's runs (HashEE's variants: its contract's ``focal``)."""
    return {row["method"] for row in rows if row_contract(row).focal}


def curves(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[int, list[Point]]]:
    """``{(task, method): {seed: points}}`` of the run rows with per-example predictions."""
    found: dict[tuple[str, str], dict[int, list[Point]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        path = Path(row["run_dir"]) / PREDICTIONS_FILE
        if row.get("source") == "run" and row_contract(row).has_target and path.is_file():
            found[(row["task"], row["method"])][row["seed"]].append(load_point(str(path)))
    return found


def references(rows: list[dict[str, Any]], task: str) -> list[float]:
    """1.5x, 2x, 3x and every HashEE point of the task (mean realized speed-up over seeds, 2 decimals)."""
    points: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        if row["task"] == task and row.get("source") == "run" and row_contract(row).focal and row.get("flops_speedup"):
            points[(row["method"], row["target"])].append(float(row["flops_speedup"]))
    found = sorted({round(statistics.fmean(v), 2) for v in points.values()})
    chosen = list(REFERENCES)
    for point in found:  # a HashEE point within AT_POINT of a reference already there adds nothing
        if all(abs(point - other) > AT_POINT * other for other in chosen):
            chosen.append(point)
    return sorted(chosen)


def read_off(task_curves: dict[str, dict[int, list[Point]]], reference: float) -> dict[str, list[Mix]]:
    """Each method's mixes at ``reference`` (the seeds that reach it); methods no seed reaches are left out."""
    reached = {}
    for method, seeds in task_curves.items():
        mixes = [m for m in (mix_at(points, reference) for points in seeds.values()) if m is not None]
        if mixes:
            reached[method] = mixes
    return reached


def headline_rows(task: str, metric: str, reference: float, reached: dict[str, list[Mix]],
                  every: list[str]) -> list[dict[str, Any]]:
    """Each method at ``reference``: its value, and its difference to the best (two-level bootstrap)."""
    values = {method: value(metric, mixes) for method, mixes in reached.items()}
    best = max(values, key=values.get) if values else None
    table = []
    for method in sorted(every, key=lambda m: (-values.get(m, -1e9), m)):
        row = {"task": task, "speedup": reference, "method": method, "metric": metric, "mixing": mixed(metric)}
        if method not in reached:
            table.append({**row, "reached": False})
            continue
        row.update(reached=True, seeds=len(reached[method]), value=values[method], best=method == best)
        if method != best:
            result = compare(metric, reached[method], reached[best])
            row.update(difference=100 * result.difference, low=100 * result.low, high=100 * result.high,
                       p_value=result.p_value, tie=result.tie, versus=best, one_seed=min(result.seeds) < 2)
        table.append(row)
    return table


def hashee_rows(task: str, metric: str, reference: float, reached: dict[str, list[Mix]],
                focal: set[str]) -> list[dict[str, Any]]:
    """Every HashEE variant (``focal``) reached at ``reference`` minus every other method reached there."""
    table = []
    for variant in sorted(m for m in reached if m in focal):
        for other in sorted(m for m in reached if m not in focal):
            result = compare(metric, reached[variant], reached[other])
            table.append({"task": task, "speedup": reference, "hashee": variant, "versus": other, "metric": metric,
                          "seeds": result.seeds, "difference": 100 * result.difference, "low": 100 * result.low,
                          "high": 100 * result.high, "p_value": result.p_value, "tie": result.tie})
    return table


def claim_rows(task: str, metric: str, reference: float, reached: dict[str, list[Mix]],
               focal: set[str]) -> list[dict[str, Any]]:
    """The paper's claim at ``reference``: each HashEE variant (``focal``) reached there against the best other
    method there (HashEE above every baseline means above the best of them). No variant is picked on the reported
    split."""
    values = {method: value(metric, mixes) for method, mixes in reached.items() if method not in focal}
    if not values:
        return []
    best_other = max(values, key=values.get)
    table = []
    for variant in sorted(m for m in reached if m in focal):
        result = compare(metric, reached[variant], reached[best_other])
        table.append({"task": task, "speedup": reference, "hashee": variant, "versus": best_other, "metric": metric,
                      "seeds": result.seeds, "difference": 100 * result.difference, "low": 100 * result.low,
                      "high": 100 * result.high, "p_value": result.p_value, "tie": result.tie})
    return table


def operating_points(rows: list[dict[str, Any]], task: str) -> dict[tuple[str, float | None], list[Point]]:
    """``{(variant, target): one point per seed}`` of the focal method's runs on a task (its rows at one nominal
    target: the configuration chosen on validation has one per seed)."""
    found: dict[tuple[str, float | None], list[Point]] = defaultdict(list)
    for row in rows:
        path = Path(row["run_dir"]) / PREDICTIONS_FILE
        if row["task"] == task and row.get("source") == "run" and row_contract(row).focal and path.is_file():
            found[(row["method"], row["target"])].append(load_point(str(path)))
    return found


def spread_out(speeds: list[float]) -> bool:
    """Whether no common reference (the mean, 2 decimals, as :func:`references` takes it) holds every speed-up
    within :data:`AT_POINT`: then the seeds are only read together each at its own speed-up."""
    reference = round(statistics.fmean(speeds), 2)
    return any(abs(speed - reference) > AT_POINT * reference for speed in speeds)


def own_speedup_rows(task: str, metric: str, groups: dict[tuple[str, float | None], list[Point]],
                     task_curves: dict[str, dict[int, list[Point]]], focal: set[str]) -> list[dict[str, Any]]:
    """The claim for a variant whose seeds (at one nominal target) sit at speed-ups no common reference holds (the
    configuration chosen on validation), every seed at its own speed-up: each other method is read off its curve at
    every one of those speed-ups (each of its seeds; an other method must reach them all), the best other is the one
    with the best mean there, and the difference is the variant's mean over its seeds minus the other's mean over
    (its seed, speed-up) readings, bootstrapped as at one speed-up (the readings resampled as units)."""
    table = []
    for (variant, target), points in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        speeds = [point.speedup for point in points]
        if len(points) < 2 or not spread_out(speeds):
            continue
        mine = [Mix(point, point, 0.0) for point in points]
        others, other_seeds = {}, {}
        for other, seeds in task_curves.items():
            readings = {seed: [mix_at(seed_points, speed) for speed in speeds] for seed, seed_points in seeds.items()}
            if other not in focal and all(any(r[i] is not None for r in readings.values()) for i in range(len(speeds))):
                others[other] = [m for r in readings.values() for m in r if m is not None]
                other_seeds[other] = sum(any(m is not None for m in r) for r in readings.values())
        if not others:
            continue
        best = max(sorted(others), key=lambda other: value(metric, others[other]))
        result = compare(metric, mine, others[best])
        table.append({"task": task, "speedup": statistics.fmean(speeds), "speedups": (min(speeds), max(speeds)),
                      "target": target, "hashee": variant, "versus": best, "metric": metric,
                      "seeds": (len(points), other_seeds[best]), "difference": 100 * result.difference,
                      "low": 100 * result.low, "high": 100 * result.high, "p_value": result.p_value, "tie": result.tie})
    return table


def equal_speedup_tables(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The claim, headline and HashEE-vs-baselines tables of every task."""
    found, focal = curves(rows), focal_labels(rows)
    headline, versus, claims = [], [], []
    for task in sorted({task for task, _ in found}):
        task_curves = {method: seeds for (t, method), seeds in found.items() if t == task}
        metric = next(r["primary_metric"] for r in rows if r["task"] == task)
        for reference in references(rows, task):
            reached = read_off(task_curves, reference)
            headline += headline_rows(task, metric, reference, reached, sorted(task_curves))
            versus += hashee_rows(task, metric, reference, reached, focal)
            claims += claim_rows(task, metric, reference, reached, focal)
        # seeds that no common reference holds (the configuration chosen on validation): each at its own speed-up
        claims += own_speedup_rows(task, metric, operating_points(rows, task), task_curves, focal)
    return {"claim": claims, "headline": headline, "hashee_versus": versus}


def verdict(row: dict[str, Any]) -> str:
    """best / tie / below / not reached; "(1 seed)" where either side has one seed: not a claim."""
    if not row.get("reached", True):
        return "not reached"
    if row.get("best"):
        return "best" + (" (1 seed)" if row["seeds"] < 2 else "")
    return ("tie" if row["tie"] else "below") + (" (1 seed)" if row.get("one_seed") else "")


def _interval(row: dict[str, Any]) -> str:
    return f"{row['difference']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]"


def speedup_cell(row: dict[str, Any]) -> str:
    """The claim table's speed-up: one reference, or the range of a variant's own speed-ups."""
    if "speedups" in row:
        target = "" if row.get("target") is None else f", target {row['target']:g}x"
        return f"{row['speedups'][0]:.2f}-{row['speedups'][1]:.2f} (own{target})"
    return f"{row['speedup']:.2f}"


def claim_word(row: dict[str, Any]) -> str:
    """Whether the paper's claim (HashEE above every baseline at equal speed-up) holds at this speed-up."""
    word = "holds" if not row["tie"] and row["difference"] > 0 else (
        "not shown (tie)" if row["tie"] else "does not hold")
    return word + (" (1 seed)" if min(row["seeds"]) < 2 else "")


def claim_lines(claim: list[dict[str, Any]], settled: bool = False) -> list[str]:
    """The claim table (``settled``: only its rows with at least two seeds on each side, the ones a claim may rest
    on), with its heading and reading; no lines without rows."""
    rows = [r for r in claim if not settled or min(r["seeds"]) >= 2]
    if not rows:
        return []
    lines = ["## The paper's claim at equal realized speed-up", "",
             "Each HashEE variant run (as calibrated by default, each depth of its family, the one chosen on "
             "validation, other pooling, the official settings) minus the best other method at the same speed-up, "
             "in points: the claim (HashEE above every baseline) holds for a variant only where this is "
             "significantly positive. Interval over examples and seeds." + (
                 " Rows with at least two seeds on each side; the others are in the full report." if settled else ""),
             "", "| task | speed-up | HashEE | best other | seeds | difference [95 %] | p | claim |",
             "|---|---:|---|---|---|---|---:|---|"]
    lines += [f"| {r['task']} | {speedup_cell(r)} | {r['hashee']} | {r['versus']} | {r['seeds'][0]} / "
              f"{r['seeds'][1]} | {_interval(r)} | {r['p_value']:.3f} | {claim_word(r)} |" for r in rows]
    if any("speedups" in r for r in rows):
        lines += ["", "\"own\": a variant whose seeds sit at different speed-ups (its configuration chosen on "
                  "validation per seed) compared with every seed at its own speed-up, the other methods read off their "
                  "curves at each of those speed-ups."]
    return [*lines, ""]


def markdown(tables: dict[str, list[dict[str, Any]]]) -> str:
    """The equal-speed-up sections of report.md."""
    if not tables["headline"]:
        return ""
    lines = claim_lines(tables.get("claim", []))
    lines += ["## At equal realized speed-up", "",
             "Each method read off its curve at the same FLOPs speed-up on the reported split: per-example mixing of "
             "its two nearest operating points in the proportion that gives exactly that speed-up (the metric's "
             "linear interpolation for correlations), per seed; \"not reached\" outside its curve, never extrapolated. "
             "Differences in points against the best method at that speed-up, with a 95 % bootstrap interval over "
             "examples *and* seeds; \"tie\" when it includes 0; \"(1 seed)\": one side has a single seed, an indication, "
             "not a claim.", "",
             "| task | speed-up | method | seeds | metric | value | minus the best [95 %] | verdict |",
             "|---|---:|---|---:|---|---:|---|---|"]
    for r in tables["headline"]:
        if not r["reached"]:
            lines.append(f"| {r['task']} | {r['speedup']:.2f} | {r['method']} | - | {r['metric']} | - | - | not reached |")
            continue
        diff = "-" if r["best"] else _interval(r)
        lines.append(f"| {r['task']} | {r['speedup']:.2f} | {r['method']} | {r['seeds']} | {r['metric']} | "
                     f"{r['value']:.4f} | {diff} | {verdict(r)} |")
    if tables["hashee_versus"]:
        lines += ["", "### HashEE against each other method at equal speed-up", "",
                  "HashEE minus the other method, in points, same examples; interval over examples and seeds.", "",
                  "| task | speed-up | HashEE | versus | seeds | HashEE minus [95 %] | p | verdict |",
                  "|---|---:|---|---|---|---|---:|---|"]
        for r in tables["hashee_versus"]:
            word = "tie" if r["tie"] else ("HashEE better" if r["difference"] > 0 else "HashEE worse")
            word += " (1 seed)" if min(r["seeds"]) < 2 else ""
            lines.append(f"| {r['task']} | {r['speedup']:.2f} | {r['hashee']} | {r['versus']} | "
                         f"{r['seeds'][0]} / {r['seeds'][1]} | {_interval(r)} | {r['p_value']:.3f} | {word} |")
    return "\n".join(lines)
