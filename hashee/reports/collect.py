"""Collect a (possibly partial) sweep's runs: one flat row per complete ``results.json``, plus rows read off the
curves of methods with an operating point at other target speed-ups."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from hashee.core.operating_points import test_point_for_target
from hashee.methods.registry import MethodContract, contract_of
from hashee.runs.identity import method_label as label_of
from hashee.runs.identity import requested_target as target_of
from hashee.runs.results import is_complete


def contract(results: dict[str, Any]) -> MethodContract:
    """The contract of a run's method: the one it recorded, else the registered one (records that predate it)."""
    return contract_of(str(results.get("method")), results.get("method_contract"))


def row_contract(row: dict[str, Any]) -> MethodContract:
    """The contract of a report row: the one collected with it, else the registered contract of its label's method
    (``hashee`` for ``hashee[frequency]``: rows made by hand, or by an older export)."""
    return row.get("contract") or contract_of(str(row["method"]).split("[", 1)[0])


def method_label(results: dict[str, Any]) -> str:
    """The label a run is reported under: ``hashee[frequency]`` for HashEE (the hash matters), else the method."""
    return label_of(contract(results), results.get("config", {}))


def requested_target(results: dict[str, Any]) -> float | None:
    """The target speed-up a run was asked for (None for the full model, which has none)."""
    return target_of(contract(results), results.get("config", {}))


def curve_rows(results: dict[str, Any], base: dict[str, Any], targets: Iterable[float]) -> list[dict[str, Any]]:
    """Extra rows at other target speed-ups from a run's curves: the knob is chosen on the
    validation curve (same rule as the run), the test point at that knob is reported.
    One trained model serves its whole curve; wall-clock is only measured at the run's own point."""
    info = results.get("method_info", {})
    val_curve = (info.get("operating_point") or {}).get("val_curve")
    test_curve = info.get("test_curve")
    rows = []
    for target in targets:
        if base["target"] is not None and abs(target - base["target"]) < 1e-9:
            continue
        found = test_point_for_target(val_curve, test_curve, target)
        if found is None:
            continue
        point, _ = found
        rows.append({**base, "target": target, "primary": point["primary"], "flops_speedup": point["flops_speedup"],
                     "measured_speedup": None, "efficiency": None, "timing_noisy": None, "source": "curve",
                     "primary_ci95": None,  # the run's interval is of its own point, not of this one
                     **{f"metric.{k}": v for k, v in point.get("metrics", {}).items()}})
    return rows


def backbone_of(results: dict[str, Any]) -> str | None:
    """The backbone config a run used (``minilm``, ``mpnet_base``, ...), None where it is not recorded."""
    backbone = results.get("config", {}).get("backbone")
    return backbone.get("name") if isinstance(backbone, dict) else None


def qualify_tasks_by_backbone(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Where a sweep spans several backbones (``+sweep=depth``), report every task as ``<task>@<backbone>``, so
    tables, statistics and plots never pool or deduplicate runs of different backbones; one backbone: unchanged."""
    if len({row["backbone"] for row in rows}) < 2:
        return rows
    return [{**row, "task": f"{row['task']}@{row['backbone']}"} for row in rows]


def collect_runs(sweep_dir: Path, curve_targets: Iterable[float] = ()) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Flat rows of every complete run under ``sweep_dir`` (plus rows read off the curves of methods
    with an operating point at ``curve_targets``) and a count of runs by status. Tasks are qualified by
    backbone where the runs span several (:func:`qualify_tasks_by_backbone`)."""
    rows, statuses = [], defaultdict(int)
    for path in sorted(sweep_dir.rglob("results.json")):
        try:
            results = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            statuses["unreadable"] += 1
            continue
        if results.get("experiment"):  # not a method's run (the difficulty experiments: hashee.reports.difficulty)
            continue
        statuses[results.get("status", "unknown")] += 1
        if not is_complete(results):
            continue
        cost = results.get("cost", {})
        described = results.get("method_info", {}).get("prepare", {}).get("hash") or {}
        row = {
            "task": results["task"], "backbone": backbone_of(results), "method": method_label(results),
            "target": requested_target(results), "contract": contract(results),
            "seed": results.get("seed"), "primary_metric": results.get("primary_metric"), "primary": results.get("primary"),
            "flops_speedup": cost.get("flops_speedup"), "measured_speedup": cost.get("measured_speedup"),
            "efficiency": cost.get("efficiency"), "timing_noisy": cost.get("timing_noisy"),
            "run_dir": str(path.parent), "source": "run",
            "exit_histogram": described.get("train_exit_histogram"),
            "exit_diagnostics": results.get("method_info", {}).get("exit_diagnostics"),
            "primary_ci95": results.get("primary_ci95"), "code": (results.get("code") or {}).get("fingerprint"),
            "val_primary": results.get("val_primary"), "depth": described.get("depth"),
            **{f"metric.{k}": v for k, v in results.get("metrics", {}).items()},
        }
        rows.append(row)
        rows.extend(curve_rows(results, row, curve_targets))
    return qualify_tasks_by_backbone(rows), dict(statuses)


def code_versions(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Runs per code fingerprint (``not recorded`` for runs older than the record)."""
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        if row["source"] == "run":
            counts[row.get("code") or "not recorded"] += 1
    return dict(counts)


def mixed_code_note(rows: list[dict[str, Any]]) -> str | None:
    """One line for a report whose runs come from more than one code version (None when they all agree)."""
    counts = code_versions(rows)
    if len(counts) < 2:
        return None
    listed = ", ".join(f"{code} ({n} runs)" for code, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return (f"**Mixed code versions:** these runs come from {len(counts)} code versions ({listed}); a difference "
            "between runs of different code may come from the code, not the method.")


def deduplicate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, method, target, seed): a measured run wins over a point read off a curve
    (several jobs of a method whose training does not depend on the target share the same curve)."""
    chosen: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = (row["task"], row["method"], row["target"], row["seed"])
        if key not in chosen or (chosen[key]["source"] == "curve" and row["source"] == "run"):
            chosen[key] = row
    return list(chosen.values())
