"""Generation runs against each other on the same reported examples: the paper's claim (b), "HashEE keeps more
quality than other early-exit methods with fewer FLOPs", read at equal realized speed-up and as Pareto order.

Every generation run keeps the ROUGE of each reported example (``rouge.npz``). Each HashEE point (a target) is
compared with each other method's point (a target; the full model at 1x), paired over the examples of the same
seed, pooled over the seeds both have (:func:`hashee.core.stats.seeds_and_examples_interval`). The two points sit at
their own realized FLOPs speed-ups, so the verdict is an order, not a difference at one speed-up:

- *HashEE dominated*: the other point is at least as fast and significantly better;
- *HashEE dominates*: HashEE is at least as fast and significantly better;
- *tie*: the interval includes 0 (the faster one then wins on cost alone: said with the speed-ups);
- *trade-off*: the better one is slower.

"At least as fast" allows :data:`hashee.core.equal_speedup.AT_POINT` (0.5 %).

At equal realized speed-up (:func:`equal_rows`): another method with several points (static truncation, whose
curve continues to the full model at 1x) is read off at each HashEE seed's own speed-up ``S`` by per-example mixing
of the two points of that seed that bracket ``S`` (as :mod:`hashee.core.equal_speedup` does for classification):
each example follows the faster point with probability ``w``, chosen so the expected cost per token is the full
model's over ``S`` (``1/S = (1-w)/S_a + w/S_b``). ROUGE of one example is a number and the metric is its mean, so
the expected score of an example is ``(1-w) a + w b``, paired with HashEE's on the same example; a speed-up outside
the other's curve is not reached, never extrapolated.

The claim lines (:func:`claim_lines`) read, per early-exit method (the full model is the reference, not a
competitor), the equal-speed-up comparisons: the claim holds where HashEE is significantly better at every HashEE
point the other's curve reaches. A method whose curve reaches none is read by the Pareto pairs: a pair puts HashEE
*ahead* when it dominates, or ties while faster (same quality for fewer FLOPs), and *behind* when it is dominated,
or ties while slower. Claim (b) holds against a method when some pair puts HashEE
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


def curve_at(points: list[tuple[float, np.ndarray]], speedup: float) -> np.ndarray | None:
    """Per-example expected scores of one seed's curve (``(speed-up, scores)`` points) read at ``speedup`` by mixing
    the two points that bracket it (module docstring); a point within :data:`AT_POINT` is read as it is; None
    outside the curve."""
    ordered = sorted(points, key=lambda point: point[0])
    for fast, scores in ordered:
        if abs(fast - speedup) <= AT_POINT * speedup:
            return scores
    for (slow, a), (fast, b) in zip(ordered, ordered[1:]):
        if slow < speedup < fast:
            weight = (1 / slow - 1 / speedup) / (1 / slow - 1 / fast)
            return (1 - weight) * a + weight * b
    return None


def curves(rows: list[dict[str, Any]], points: dict[tuple, dict[int, dict[str, Any]]]
           ) -> dict[tuple[str, str], dict[int, list[tuple[float, np.ndarray]]]]:
    """``{(task, method): {seed: [(speed-up, scores)]}}`` of every non-focal method with an operating point (from
    :func:`generation_points`), the full model's point at 1x added to a method whose curve includes it (static
    truncation)."""
    contracts = {row["method"]: row_contract(row) for row in rows}
    full: dict[tuple[str, int], tuple[float, np.ndarray]] = {}
    out: dict[tuple[str, str], dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for (task, method, _), seeds in points.items():
        contract = contracts[method]
        for seed, point in seeds.items():
            if contract.full_model:
                full[(task, seed)] = (1.0, point["scores"])
            elif not contract.focal:
                out[(task, method)][seed].append((point["speedup"], point["scores"]))
    for (task, method), seeds in out.items():
        if contracts[method].includes_full_model:
            for seed, points in seeds.items():
                points.extend([full[(task, seed)]] if (task, seed) in full else [])
    return out


def equal_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every HashEE point against every other early-exit method's curve read at each seed's own HashEE speed-up."""
    points, contracts = generation_points(rows), {row["method"]: row_contract(row) for row in rows}
    other_curves = curves(rows, points)
    table = []
    for (task, method, target), seeds in sorted(points.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        if not contracts[method].focal:
            continue
        for (other_task, other), other_seeds in sorted(other_curves.items()):
            if other_task != task:
                continue
            read = {s: curve_at(other_seeds[s], seeds[s]["speedup"]) for s in sorted(seeds) if s in other_seeds}
            reached = {s: scores for s, scores in read.items() if scores is not None}
            row = {"task": task, "hashee": method, "target": target, "other": other, "seeds": len(reached),
                   "speedup": statistics.fmean(seeds[s]["speedup"] for s in seeds), "not_reached": len(read) - len(reached)}
            if reached:
                row["interval"] = seeds_and_examples_interval([seeds[s]["scores"] - reached[s] for s in reached])
            table.append(row)
    return table


def equal_verdict(row: dict[str, Any]) -> str:
    """``better``, ``worse``, ``tie`` (HashEE against the other's curve at its speed-up) or ``not reached``."""
    if "interval" not in row:
        return "not reached"
    interval = row["interval"]
    return "tie" if not interval.excludes_zero else "better" if interval.low > 0 else "worse"


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
    lines = ["At equal realized FLOPs speed-up: each HashEE point against each other early-exit method's curve read "
             "at that HashEE seed's own speed-up (per-example mixing of the two points around it; the full model is "
             "the 1x end of static truncation's curve), HashEE minus the other in ROUGE points, paired, 95 % over "
             "examples and seeds.", "",
             "| task | HashEE | speed-up | versus | seeds | HashEE minus [95 %] | verdict |", "|---|---|---:|---|---:|---|---|"]
    for r in equal_rows(rows):
        i = r.get("interval")
        cell = f"{100 * i.mean:+.2f} [{100 * i.low:+.2f}, {100 * i.high:+.2f}]" if i else "-"
        seeds = f"{r['seeds']}" + (f" ({r['not_reached']} not reached)" if r["not_reached"] else "")
        lines.append(f"| {r['task']} | {r['hashee']}@{r['target']} | {r['speedup']:.2f} | {r['other']} | {seeds} | {cell} "
                     f"| {equal_verdict(r)} |")
    lines += ["", "HashEE's points against every other generation point, on the same reported examples (paired, over the "
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


def _seeds(count: int) -> str:
    return f"{count} seed{'s' if count != 1 else ''}"


def claim_line(task: str, other: str, equal: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> str:
    """One sentence: does HashEE keep more quality than ``other`` at fewer FLOPs on ``task``? At equal realized
    speed-up where ``other``'s curve reaches HashEE's points, else by the Pareto pairs (module docstring)."""
    reached = [r for r in equal if "interval" in r]
    if reached:
        better = [r for r in reached if equal_verdict(r) == "better"]
        verdict = ("holds" if len(better) == len(reached) else "does **not** hold" if not better else
                   "holds at some speed-ups only")
        reasons = "; ".join(f"{r['hashee']}@{r['target']} ({r['speedup']:.2f}x, {_seeds(r['seeds'])}): "
                            f"{100 * r['interval'].mean:+.2f} [{100 * r['interval'].low:+.2f}, "
                            f"{100 * r['interval'].high:+.2f}], {equal_verdict(r)}" for r in reached)
        return f"- {task}, against {other} at equal realized speed-up: claim (b) {verdict} ({reasons})."
    said = {"ahead": [], "behind": [], "neither": []}
    for pair in pairs:
        said[standing(pair)].append(f"{_point(pair['hashee'], pair['target'], pair['speedup'])} vs "
                                    f"{_point(other, pair['other_target'], pair['other_speedup'])}: {pair['order']}")
    verdict = ("holds" if said["ahead"] and not said["behind"] else
               "does **not** hold" if said["behind"] and not said["ahead"] else
               "is mixed" if said["behind"] else "is not settled (ties at equal cost or trade-offs only)")
    reasons = "; ".join(said["ahead"] + said["behind"] + said["neither"])
    return f"- {task}, against {other} (its curve reaches no HashEE point; Pareto pairs): claim (b) {verdict} ({reasons})."


def claim_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The answer to claim (b), one line per task and early-exit method (empty without generation pairs)."""
    contracts = {row["method"]: row_contract(row) for row in rows}
    pairs = [pair for pair in pair_rows(rows) if not contracts[pair["other"]].full_model]
    if not pairs:
        return []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for pair in pairs:
        groups[(pair["task"], pair["other"])].append(pair)
    equal: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in equal_rows(rows):
        equal[(row["task"], row["other"])].append(row)
    return ["Claim (b), \"HashEE keeps more quality than other early-exit methods with fewer FLOPs\", on generation, "
            "per early-exit method: HashEE minus the method's curve read at HashEE's own realized FLOPs speed-up, in "
            "ROUGE points, paired over examples and seeds, 95 % (the full model is the 1x end of static truncation's "
            "curve, not a competitor); the claim holds where HashEE is significantly better at every speed-up read.",
            "", *(claim_line(task, other, equal[(task, other)], group) for (task, other), group in sorted(groups.items()))]


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
