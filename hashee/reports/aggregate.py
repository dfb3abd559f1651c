"""The table of every run at its nominal target: mean +- std over seeds of every (task, method, target).

With one seed there is no spread over seeds: ``primary_std`` is None and the row carries the run's 95 % bootstrap
interval over examples (``primary_ci95``) instead. ``timing_noisy``: some seed's timing failed the noise check."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any, Iterable

from hashee.reports.collect import row_contract

COLUMNS = ["task", "method", "target", "seeds", "primary_metric", "primary_mean", "primary_std",
           "flops_speedup", "measured_speedup", "efficiency"]


def _mean(values: Iterable[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return statistics.fmean(clean) if clean else None


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean +- std over seeds for every (task, method, target)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["task"], row["method"], row["target"])].append(row)
    table = []
    for (task, method, target), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        primaries = [m["primary"] for m in members]
        table.append({
            "task": task, "method": method, "target": target, "seeds": len(members), "contract": row_contract(members[0]),
            "primary_metric": members[0]["primary_metric"], "primary_mean": statistics.fmean(primaries),
            "primary_std": statistics.stdev(primaries) if len(primaries) > 1 else None,
            "primary_ci95": members[0].get("primary_ci95") if len(primaries) == 1 else None,
            "timing_noisy": any(m.get("timing_noisy") for m in members if m.get("measured_speedup") is not None),
            "flops_speedup": _mean(m["flops_speedup"] for m in members),
            "measured_speedup": _mean(m["measured_speedup"] for m in members),
            "efficiency": _mean(m["efficiency"] for m in members),
        })
    return table
