"""Write a sweep's report from the results.json files of a (possibly partial) sweep.

Writes ``<out>/report.md``, ``report.html`` (self-contained: plots embedded), ``runs.csv`` and PNG
plots: per task, primary metric vs FLOPs speed-up and vs measured speed-up (one line per method, the
full model as a dashed reference), every operating point with the Pareto front, each exit head on its
own, and the training exit-layer histogram of every HashEE hash. Sections: the methods at equal realized
speed-up (the headline, :mod:`hashee.reports.equal_speedup`), every run at its nominal target, HashEE's
configuration chosen on validation (:mod:`hashee.reports.family`), intervals and Pareto scores
(:mod:`hashee.reports.statistics`), and the per-exit diagnostics (:mod:`hashee.reports.diagnostics`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from hashee.reports import diagnostics as report_diagnostics
from hashee.reports import difficulty as report_difficulty
from hashee.reports import equal_speedup as report_equal
from hashee.reports import family as report_family
from hashee.reports import generation as report_generation
from hashee.reports import statistics as report_stats
from hashee.reports import timing as report_timing
from hashee.reports.aggregate import aggregate
from hashee.reports.collect import collect_runs, deduplicate, mixed_code_note
from hashee.reports.plots import plot_exit_histograms, plot_task
from hashee.reports.render import html_page, markdown_table, write_csv
from hashee.runs.results import RunStatus

CURVE_TARGETS = (1.5, 2.0, 3.0)


def load_rows(sweep_dir: Path, curve_targets: Iterable[float] = CURVE_TARGETS) -> tuple[list[dict[str, Any]], dict]:
    """The report's rows of a sweep (or a study folder): every complete run, points read off its curves, and each
    HashEE family's validation choice; with the run counts by status."""
    rows, statuses = collect_runs(sweep_dir, curve_targets)
    rows = deduplicate(rows)
    rows += report_family.chosen_rows(rows)  # hashee[...; chosen]: each HashEE family's validation choice
    if not rows:
        raise SystemExit(f"error: no complete results.json under {sweep_dir} (found: {statuses or 'none'})")
    return rows, statuses


def markdown_sections(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The report's tables as markdown, by name (what ``hashee-report --docs`` writes into the docs): ``equal``
    (methods at equal realized speed-up), ``runs`` (every run at its nominal target), ``families`` (HashEE's
    validation choice), ``intervals`` and ``pareto``, ``heads`` (each exit head on its own), ``claim`` (the claim
    rows with at least two seeds on each side: the README's), ``generation`` (HashEE's generation points against
    every other one, paired) and ``generation_claim`` (its claim (b) lines: the README's)."""
    from hashee.reports.statistics import by_point, interval_rows, load_outputs, pareto_rows

    outputs = load_outputs(rows)
    points = by_point(rows, outputs)
    heads = report_diagnostics.head_rows([r for r in rows if r["source"] == "run"])
    equal = report_equal.equal_speedup_tables(rows)
    return {"equal": report_equal.markdown(equal), "claim": "\n".join(report_equal.claim_lines(equal["claim"], True)),
            "runs": markdown_table(aggregate(rows)), "families": report_family.markdown(report_family.family_table(rows)),
            "intervals": report_stats.intervals_markdown(interval_rows(points, outputs), 0),
            "pareto": report_stats.pareto_markdown(pareto_rows(points, outputs)),
            "heads": report_diagnostics.markdown_section(heads) if heads else "",
            "generation": report_generation.markdown(rows), "generation_claim": report_generation.claim_markdown(rows)}


def difficulty_report(sweep_dir: Path, out: Path) -> dict[str, Any]:
    """A study of difficulty runs: its report is the claim (a) section (:mod:`hashee.reports.difficulty`)."""
    out.mkdir(parents=True, exist_ok=True)
    title = f"hashee-bench report: {sweep_dir.name}"
    text = f"# {title}\n\n## Learnability of model-defined difficulty\n\n{report_difficulty.markdown(sweep_dir)}"
    (out / "report.md").write_text(text)
    (out / "report.html").write_text(html_page(title, text, out))
    return {"out": str(out), "table": [], "code_note": None, "images": [], "statuses": {RunStatus.COMPLETE.value: len(
        report_difficulty.difficulty_runs(sweep_dir))}, "rows": [], "statistics": {}, "equal_speedup": {},
        "families": [], "exit_heads": []}


def build_report(sweep_dir: Path, out: Path, curve_targets: Iterable[float] = CURVE_TARGETS) -> dict[str, Any]:
    """Write the report files; return what was written and the run counts."""
    if report_difficulty.is_study(sweep_dir):
        return difficulty_report(sweep_dir, out)
    rows, statuses = load_rows(sweep_dir, curve_targets)
    out.mkdir(parents=True, exist_ok=True)
    table = aggregate(rows)
    images = []
    for task in sorted({r["task"] for r in table}):
        for axis in ("flops_speedup", "measured_speedup"):
            path = plot_task(task, table, axis, out)
            if path:
                images.append(path.name)
    hist = plot_exit_histograms(rows, out)
    if hist:
        images.append(hist.name)
    stats = report_stats.statistics_sections(rows, out)
    equal = report_equal.equal_speedup_tables(rows)
    families = report_family.family_table(rows)
    heads = report_diagnostics.head_rows([r for r in rows if r["source"] == "run"])
    head_images = [p.name for task in sorted({h["task"] for h in heads})
                   if (p := report_diagnostics.plot_task_heads(task, heads, out))]
    images += stats["images"] + head_images
    title = f"hashee-bench report: {sweep_dir.name}"
    counts = ", ".join(f"{v} {k}" for k, v in sorted(statuses.items()))
    md = [f"# {title}", "", f"Runs found: {counts}. Rows without a measured speed-up are read off a trained "
          "model's curves (knob chosen on validation, test point reported).", ""]
    note = mixed_code_note(rows)
    md += [note, ""] if note else []
    md += [report_equal.markdown(equal), "", "## Every run at its nominal target", "",
           "Each row at the target it asked for, with the FLOPs speed-up it realized: rows of different methods at one "
           "target run at different speed-ups and are not comparisons (see the section above).", "",
           markdown_table(table), ""]
    md += [f"![{i}]({i})" for i in images if i not in stats["images"] + head_images]
    md += ["", report_family.markdown(families), ""] if families else []
    md += ["", stats["markdown"], ""] + [f"![{i}]({i})" for i in stats["images"]]
    if heads:
        md += ["", report_diagnostics.markdown_section(heads), ""] + [f"![{i}]({i})" for i in head_images]
    generation = report_generation.markdown(rows)
    claim_b = report_generation.claim_markdown(rows)
    md += ["", "## Generation: HashEE against every other point", "", claim_b, generation] if generation else []
    timing_md, timing_images = report_timing.report_section(sweep_dir, out)  # hashee-timing's record, if any
    md += ["", timing_md] + [f"![{i}]({i})" for i in timing_images] if timing_md else []
    images += timing_images
    text = "\n".join(md) + "\n"
    (out / "report.md").write_text(text)
    (out / "report.html").write_text(html_page(title, text, out))
    write_csv(rows, out / "runs.csv")
    return {"out": str(out), "table": table, "code_note": note, "images": images, "statuses": statuses, "rows": rows,
            "statistics": stats["tables"], "equal_speedup": equal, "families": families, "exit_heads": heads}
