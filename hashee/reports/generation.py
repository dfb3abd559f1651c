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

The claim lines (:func:`claim_lines`) read the pairs per early-exit method (the full model is the reference, not a
competitor): a pair puts HashEE *ahead* when it dominates, or ties while faster (same quality for fewer FLOPs), and
*behind* when it is dominated, or ties while slower. Claim (b) holds against a method when some pair puts HashEE
ahead and none behind, fails when some puts it behind and none ahead, and is mixed or not settled otherwise.
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


def standing(pair: dict[str, Any]) -> str:
    """``ahead``, ``behind`` or ``neither``: where one pair puts HashEE (module docstring)."""
    if pair["order"] == "HashEE dominates":
        return "ahead"
    if pair["order"] == "HashEE dominated":
        return "behind"
    if pair["order"] == "tie" and pair["speedup"] > pair["other_speedup"] * (1 + AT_POINT):
        return "ahead"
    if pair["order"] == "tie" and pair["other_speedup"] > pair["speedup"] * (1 + AT_POINT):
        return "behind"
    return "neither"


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


def _point(method: str, target: Any, speedup: float) -> str:
    return f"{method}@{target} ({speedup:.2f}x)" if target is not None else f"{method} ({speedup:.2f}x)"


def claim_line(task: str, other: str, pairs: list[dict[str, Any]]) -> str:
    """One sentence: does HashEE keep more quality than ``other`` at fewer FLOPs on ``task``? (module docstring)."""
    said = {"ahead": [], "behind": [], "neither": []}
    for pair in pairs:
        said[standing(pair)].append(f"{_point(pair['hashee'], pair['target'], pair['speedup'])} vs "
                                    f"{_point(other, pair['other_target'], pair['other_speedup'])}: {pair['order']}")
    seeds = min(pair["seeds"] for pair in pairs)
    verdict = ("holds" if said["ahead"] and not said["behind"] else
               "does **not** hold" if said["behind"] and not said["ahead"] else
               "is mixed" if said["behind"] else "is not settled (ties at equal cost or trade-offs only)")
    reasons = "; ".join(said["ahead"] + said["behind"] + said["neither"])
    return f"- {task}, against {other} ({seeds}+ seeds per pair): claim (b) {verdict} ({reasons})."


def claim_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The answer to claim (b), one line per task and early-exit method (empty without generation pairs)."""
    contracts = {row["method"]: row_contract(row) for row in rows}
    table = [pair for pair in pair_rows(rows) if not contracts[pair["other"]].full_model]
    if not table:
        return []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for pair in table:
        groups[(pair["task"], pair["other"])].append(pair)
    return ["Claim (b), \"HashEE keeps more quality than other early-exit methods with fewer FLOPs\", on generation: "
            "every HashEE point against every point of each early-exit method (ROUGE paired over examples and seeds, "
            "95 %; each at its own realized FLOPs speed-up; a tie counts for the faster point).", "",
            *(claim_line(task, other, pairs) for (task, other), pairs in sorted(groups.items()))]


def claim_markdown(rows: list[dict[str, Any]]) -> str:
    """Only the claim lines (the README's); empty without generation pairs."""
    lines = claim_lines(rows)
    return "\n".join(lines) + "\n" if lines else ""


def exits_markdown(record: dict[str, Any]) -> str:
    """A ``hashee-generation-exits`` record as two tables: each HashEE run with its exits switched off stack by stack
    after training, and the teacher-forced validation loss by the decoder exit layer of the input token (pooled over
    the runs of one target, weighted by positions), HashEE against the full model on the same positions."""
    runs = record["runs"]
    if not runs:
        return ""
    stacks = list(runs[0]["stacks"])
    lines = ["HashEE's trained models with their hash exits kept only in the named stacks (reported split, "
             f"{runs[0]['metric']}, FLOPs speed-up); \"both\" is the run as recorded (verified: equal to its record).", "",
             "| task | seed | target | " + " | ".join(stacks) + " | verified |", "|---|---:|---:|" + "---:|" * len(stacks) + "---|"]
    for r in sorted(runs, key=lambda r: (r["task"], r["target"], r["seed"])):
        cells = " | ".join(f"{s[r['metric']]:.4f} ({s['flops_speedup']:.2f}x)" for s in r["stacks"].values())
        lines.append(f"| {r['task']} | {r['seed']} | {r['target']} | {cells} | {'yes' if r['verified'] else 'NO'} |")
    lines += ["", "Teacher-forced loss (nats per target token, validation split) by the decoder exit layer of the "
              "position's input token, HashEE and the full model of the same seed on the same positions, pooled over "
              "seeds (weighted by positions):", "",
              "| task | target | seeds | exit layer | positions | HashEE | full | HashEE minus full |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    pooled: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0, 0.0]))
    seeds: dict[tuple, set] = defaultdict(set)
    for r in runs:
        key = (r["task"], r["target"])
        seeds[key].add(r["seed"])
        for row in r["loss_by_exit_layer"]:
            acc = pooled[key][row["layer"]]
            acc[0] += row["positions"]
            acc[1] += row["positions"] * row["hashee_loss"]
            acc[2] += row["positions"] * row["full_loss"]
    for key in sorted(pooled, key=lambda k: (k[0], k[1] or 0)):
        for layer, (n, mine, theirs) in sorted(pooled[key].items()):
            lines.append(f"| {key[0]} | {key[1]} | {len(seeds[key])} | {layer} | {int(n)} | {mine / n:.3f} | "
                         f"{theirs / n:.3f} | {(mine - theirs) / n:+.3f} |")
    return "\n".join(lines) + "\n"
