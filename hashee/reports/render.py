"""Rendering a report: the comparison table as markdown, report.md as one self-contained HTML page, runs.csv."""

from __future__ import annotations

import base64
import csv
import html
import math
from pathlib import Path
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if not math.isnan(value) else "nan"
    return str(value)


NOISY_MARK = "*"
NOISY_NOTE = ("* timing noisy: the full model timed against itself was more than 5 % off 1 in that run; its measured "
              "figures are not evidence (re-time it quietly: hashee-scaling).")


def spread(row: dict[str, Any]) -> str:
    """``mean ± std`` over seeds; with one seed the run's 95 % bootstrap interval over examples (or ``-``), never a
    zero spread."""
    if row.get("primary_std") is not None:
        return f"{row['primary_mean']:.4f} ± {row['primary_std']:.4f}"
    interval = row.get("primary_ci95")
    return f"{row['primary_mean']:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else f"{row['primary_mean']:.4f} ± -"


def timed(row: dict[str, Any], key: str) -> str:
    """A measured figure, marked :data:`NOISY_MARK` when its timing failed the noise check."""
    text = _fmt(row.get(key))
    return text + NOISY_MARK if row.get("timing_noisy") and row.get(key) is not None else text


def markdown_table(table: list[dict[str, Any]]) -> str:
    """One row per (task, method, target); a footnote explains the mark of a noisy timing."""
    lines = ["| task | method | target | seeds | metric | mean ± std (1 seed: [95 % CI]) | FLOPs speed-up | "
             "measured speed-up | efficiency |", "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in table:
        lines.append(f"| {r['task']} | {r['method']} | {_fmt(r['target'])} | {r['seeds']} | {r['primary_metric']} | "
                     f"{spread(r)} | {_fmt(r['flops_speedup'])} | {timed(r, 'measured_speedup')} | {timed(r, 'efficiency')} |")
    if any(r.get("timing_noisy") for r in table):
        lines += ["", NOISY_NOTE]
    return "\n".join(lines)


def html_page(title: str, markdown_text: str, out: Path) -> str:
    """report.md as one self-contained HTML page: every plot embedded as a data URI, no external file."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown_text)
    for image in sorted({p.name for p in out.glob("*.png")}):
        data = base64.b64encode((out / image).read_bytes()).decode("ascii")
        body = body.replace(f'src="{html.escape(image)}"', f'src="data:image/png;base64,{data}" width="720"')
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            f"padding:3px 8px;text-align:right}}</style></head><body>{body}</body></html>")


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    keys = sorted({k for r in rows for k in r if k not in ("exit_histogram", "exit_diagnostics", "contract")},
                  key=lambda k: (k.startswith("metric."), k))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
