"""What a timing study (``hashee-timing``) says: each method's Pareto frontier of quality against measured time, who
wins at equal quality and at equal time, HashEE against each method, the plots and ``timing.md``.

*Fastest at equal quality*: for each point, among it and the other methods' points of at least its quality, the
fastest wins the point. *Best at equal time*: for each point, among it and the other methods' points of at most its
time, the best quality wins. A tie keeps the point itself. A verdict names the method winning the most points
(``tied``: all with that many). *Head to head* (:func:`head_to_head`): two methods' frontiers read as step functions,
compared at every quality level both reach and at every time both cover.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from hashee.reports.plots import save_plot

PERCENTILES = (50, 95, 99)


def pareto_front(points: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The points no other point beats (at most as slow and at least as good, better in one), fastest first."""
    front: list[Mapping[str, Any]] = []
    for point in sorted(points, key=lambda p: (p["time_s"], -p["quality"])):
        if not front or point["quality"] > front[-1]["quality"]:
            front.append(point)
    return front


def equal_quality_winners(points: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Per point: among it and the other methods' points of at least its quality, the fastest (a tie: itself)."""
    return [min([p, *(q for q in points if q["method"] != p["method"] and q["quality"] >= p["quality"])],
                key=lambda q: q["time_s"]) for p in points]


def equal_time_winners(points: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Per point: among it and the other methods' points of at most its time, the best quality (a tie: itself)."""
    return [max([p, *(q for q in points if q["method"] != p["method"] and q["time_s"] <= p["time_s"])],
                key=lambda q: q["quality"]) for p in points]


def verdict(points: Sequence[Mapping[str, Any]], winners: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The method that wins the most points (``tied``: every method with that many), and every point's winner."""
    wins = dict(Counter(winner["method"] for winner in winners))
    most = max(wins.values(), default=0)
    tied = sorted(m for m, n in wins.items() if n == most)
    text = f"{tied[0]} ({most} of {len(points)} points)" if len(tied) == 1 else (
        f"tie between {', '.join(tied)} ({most} of {len(points)} points each)")
    return {"method": tied[0] if len(tied) == 1 else None, "tied": tied, "wins": most, "points": len(points),
            "text": text, "wins_by_method": wins,
            "winner_of": {p["label"]: w["label"] for p, w in zip(points, winners)}}


def plot_entry(entry: Mapping[str, Any], metric: str, path: Path) -> str:
    """Quality against time per example, a colour per method, its Pareto frontier as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.6, 4.4))
    for index, method in enumerate(sorted(entry["pareto"])):
        colour = plt.get_cmap("tab10")(index % 10)
        mine = [p for p in entry["points"] if p["method"] == method]
        front = pareto_front(mine)
        ax.scatter([1000 * p["time_s"] for p in mine], [p["quality"] for p in mine], color=colour, alpha=0.5)
        ax.plot([1000 * p["time_s"] for p in front], [p["quality"] for p in front], marker="o", color=colour,
                label=method)
    what = "p50 latency (ms)" if entry["latency"] else "ms per example (fastest pass)"
    ax.set(xlabel=what, ylabel=metric, title=f"{entry['group']}: {entry['scenario']}, {entry['threads']} thread(s)")
    save_plot(fig, ax, path)
    return path.name


def point_cells(point: Mapping[str, Any], latency: bool) -> list[str]:
    """A point's timing cells: percentiles or examples per second, and the spread over repeats."""
    s = point["time_spread"]
    spread_ms = f"{1000 * s['min']:.3f} / {1000 * s['median']:.3f} / {1000 * s['max']:.3f}"
    if latency:
        return [*(f"{1000 * point[f'p{q}_s']:.3f}" for q in PERCENTILES), spread_ms]
    e = point["examples_per_s_spread"]
    return [f"{point['examples_per_s']:.1f}", f"{e['min']:.1f} / {e['median']:.1f} / {e['max']:.1f}", spread_ms]


def markdown(record: Mapping[str, Any]) -> str:
    """A table per group, scenario and thread count, with its noise check, both verdicts and the head-to-head rows."""
    lines = [f"# Timing study: {record['sweep']} ({record['meta']['device']}, {record['meta']['repeats']} repeats)", ""]
    for entry in record["scenarios"]:
        latency = entry["latency"]
        head = ["run", "quality", "FLOPs x", "verified"]
        head += (["p50 ms", "p95 ms", "p99 ms", "p50 ms min / median / max"] if latency
                 else ["examples/s", "examples/s min / median / max", "ms/example min / median / max"])
        noise = f"{entry['noise_check']:.3f}" + (" (flagged)" if entry["noise_flagged"] else "")
        lines += [f"## {entry['group']}: {entry['scenario']} (batch {entry['batch_size']}), {entry['threads']} "
                  f"thread(s)", "", f"Noise check (full model against itself): {noise}. Plot: {entry['plot']}", "",
                  "| " + " | ".join([*head, "vs full"]) + " |", "|" + "---|" * (len(head) + 1)]
        for p in entry["points"]:
            cells = [p["label"], f"{p['quality']:.4f}", f"{p['flops_speedup']:.2f}", "yes" if p["verified"] else "NO"]
            lines.append("| " + " | ".join([*cells, *point_cells(p, latency), f"{p['speedup_vs_full']:.2f}x"]) + " |")
        lines += ["", f"Fastest at equal quality: {entry['fastest_at_equal_quality']['text']}; "
                      f"best at equal time: {entry['best_at_equal_time']['text']}.", ""]
        lines += head_to_head_lines(entry.get("head_to_head", []))
    lines += [f"Not timed: {s['run']} ({s['reason']})" for s in record["skipped"]]
    return "\n".join(lines) + "\n"


def fastest_reaching(points: Sequence[Mapping[str, Any]], quality: float) -> float | None:
    """The least time of the points of at least ``quality`` (None: none reaches it)."""
    times = [p["time_s"] for p in points if p["quality"] >= quality]
    return min(times) if times else None


def best_within(points: Sequence[Mapping[str, Any]], time_s: float) -> float | None:
    """The best quality of the points of at most ``time_s`` (None: none is that fast)."""
    qualities = [p["quality"] for p in points if p["time_s"] <= time_s]
    return max(qualities) if qualities else None


def head_to_head(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The focal method (HashEE: the points marked ``focal`` by its contract) against every other method. Equal quality: at each point's quality that both reach, each method's
    fastest point reaching it; ``time_ratios`` are the other's time over the focal's (> 1: the focal is faster).
    Equal time: at each point's time that both cover, each method's best quality within it; ``quality_gaps`` are
    focal minus other. No level outside either method's range is read (never extrapolated)."""
    mine = [p for p in points if p["focal"]]
    focal = mine[0]["method"] if mine else None
    rows = []
    for other in sorted({p["method"] for p in points} - {focal}):
        theirs = [p for p in points if p["method"] == other]
        if not mine or not theirs:
            continue
        ratios, gaps = [], []
        for level in sorted({p["quality"] for p in [*mine, *theirs]}):
            t_mine, t_theirs = fastest_reaching(mine, level), fastest_reaching(theirs, level)
            if t_mine is not None and t_theirs is not None:
                ratios.append(t_theirs / t_mine)
        for budget in sorted({p["time_s"] for p in [*mine, *theirs]}):
            q_mine, q_theirs = best_within(mine, budget), best_within(theirs, budget)
            if q_mine is not None and q_theirs is not None:
                gaps.append(q_mine - q_theirs)
        rows.append({"focal": focal, "other": other, "time_ratios": ratios, "quality_gaps": gaps,
                     "faster_levels": sum(r > 1 for r in ratios), "slower_levels": sum(r < 1 for r in ratios),
                     "better_budgets": sum(g > 0 for g in gaps), "worse_budgets": sum(g < 0 for g in gaps)})
    return rows


def head_to_head_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """A table of :func:`head_to_head` rows."""
    if not rows:
        return []
    focal = rows[0]["focal"]
    lines = [f"| {focal} against | equal quality: levels {focal} faster / slower | time ratio (other / {focal}) "
             f"min / median / max | equal time: budgets {focal} better / worse | quality gap min / median / max |",
             "|---|---|---|---|---|"]
    for row in rows:
        ratios, gaps = sorted(row["time_ratios"]), sorted(row["quality_gaps"])
        ratio = (f"{ratios[0]:.2f} / {ratios[len(ratios) // 2]:.2f} / {ratios[-1]:.2f}" if ratios
                 else "no common quality")
        gap = f"{gaps[0]:+.4f} / {gaps[len(gaps) // 2]:+.4f} / {gaps[-1]:+.4f}" if gaps else "no common time"
        lines.append(f"| {row['other']} | {row['faster_levels']} / {row['slower_levels']} of {len(ratios)} | {ratio} "
                     f"| {row['better_budgets']} / {row['worse_budgets']} of {len(gaps)} | {gap} |")
    return [*lines, ""]


def timing_record(study: Path) -> dict[str, Any] | None:
    """A study's timing record: ``timing.json`` in the study folder (committed) or in its ``timing/`` (as
    ``hashee-timing`` writes it by default); None without one."""
    import json

    for path in (study / "timing.json", study / "timing" / "timing.json"):
        if path.is_file():
            return json.loads(path.read_text())
    return None


def report_section(study: Path, out: Path) -> tuple[str, list[str]]:
    """The report's time section from a study's timing record (headings one level down) and its plots, drawn into
    ``out``; empty without a record."""
    record = timing_record(study)
    if record is None:
        return "", []
    images = [plot_entry(entry, record["runs"][0]["primary_metric"], out / entry["plot"])
              for entry in record["scenarios"]]
    lines = [("#" + line) if line.startswith("#") else line for line in markdown(record).splitlines()]
    return "\n".join(lines) + "\n", images
