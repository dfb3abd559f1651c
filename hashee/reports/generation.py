"""Generation runs against each other on the same reported examples: the paper's claim (b), "HashEE keeps more
quality than other early-exit methods with fewer FLOPs", read as Pareto order with intervals.

Every generation run keeps the ROUGE of each reported example (``rouge.npz``). Each HashEE point (a target) is
compared with each other method's point (a target; the full model at 1x), paired over the examples of the same
seed, pooled over the seeds both have (:func:`hashee.core.stats.seeds_and_examples_interval`). The two points sit at
their own realized FLOPs speed-ups, so the verdict is an order, not a difference at one speed-up:

- *HashEE dominated*: the other point is at least as fast and significantly better;
- *HashEE dominates*: HashEE is at least as fast and significantly better;
- *tie*: the interval includes 0 (the faster one then wins on cost alone: said with the speed-ups);
- *trade-off*: the better one is slower.

"At least as fast" allows :data:`hashee.core.equal_speedup.AT_POINT` (0.5 %).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from hashee.core.equal_speedup import AT_POINT
from hashee.core.stats import MeanInterval, seeds_and_examples_interval
from hashee.reports.collect import row_contract
from hashee.runs.results import ROUGE_FILE


def generation_points(rows: list[dict[str, Any]]) -> dict[tuple, dict[int, dict[str, Any]]]:
    """``{(task, method, target): {seed: {speedup, measured, scores}}}`` of the runs that kept per-example ROUGE."""
    points: dict[tuple, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        path = Path(row["run_dir"]) / ROUGE_FILE
        if row.get("source") != "run" or not path.is_file():
            continue
        with np.load(path) as saved:
            scores = saved[row["primary_metric"]][np.argsort(saved["index"], kind="stable")]
        points[(row["task"], row["method"], row["target"])][row["seed"]] = {
            "speedup": float(row["flops_speedup"] or 1.0), "measured": row.get("measured_speedup"), "scores": scores}
    return points


def order(focal_speedup: float, other_speedup: float, interval: MeanInterval) -> str:
    """The Pareto verdict of HashEE (focal) against another point: see the module docstring."""
    focal_fast = focal_speedup >= other_speedup * (1 - AT_POINT)
    other_fast = other_speedup >= focal_speedup * (1 - AT_POINT)
    if not interval.excludes_zero:
        return "tie"
    if interval.low > 0:
        return "HashEE dominates" if focal_fast else "trade-off (HashEE better, slower)"
    return "HashEE dominated" if other_fast else "trade-off (HashEE worse, faster)"


def pair_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every HashEE point against every other method's point of the same task (seeds both have, paired)."""
    points = generation_points(rows)
    focal = {row["method"] for row in rows if row_contract(row).focal}
    table = []
    for (task, method, target), seeds in sorted(points.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        if method not in focal:
            continue
        for (other_task, other, other_target), other_seeds in sorted(points.items(), key=lambda kv: (kv[0][1], kv[0][2] or 0)):
            common = sorted(set(seeds) & set(other_seeds))
            if other_task != task or other in focal or not common:
                continue
            interval = seeds_and_examples_interval([seeds[s]["scores"] - other_seeds[s]["scores"] for s in common])
            speedup = statistics.fmean(seeds[s]["speedup"] for s in common)
            other_speedup = statistics.fmean(other_seeds[s]["speedup"] for s in common)
            table.append({"task": task, "hashee": method, "target": target, "speedup": speedup, "other": other,
                          "other_target": other_target, "other_speedup": other_speedup, "seeds": len(common),
                          "interval": interval, "order": order(speedup, other_speedup, interval)})
    return table


def markdown(rows: list[dict[str, Any]]) -> str:
    """The pairs as a table (empty when no generation run kept per-example ROUGE)."""
    table = pair_rows(rows)
    if not table:
        return ""
    lines = ["HashEE's points against every other generation point, on the same reported examples (paired, over the "
             "seeds both have): HashEE minus the other in ROUGE points with a 95 % interval over examples and seeds, "
             "each at its own realized FLOPs speed-up.", "",
             "| task | HashEE | speed-up | versus | speed-up | seeds | HashEE minus [95 %] | order |",
             "|---|---|---:|---|---:|---:|---|---|"]
    for r in table:
        i = r["interval"]
        lines.append(f"| {r['task']} | {r['hashee']} | {r['speedup']:.2f} | {r['other']} | {r['other_speedup']:.2f} | "
                     f"{r['seeds']} | {100 * i.mean:+.2f} [{100 * i.low:+.2f}, {100 * i.high:+.2f}] | {r['order']} |")
    return "\n".join(lines) + "\n"
