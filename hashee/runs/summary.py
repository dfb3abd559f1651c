"""The end-of-run summary table, printed to the terminal or, wide, to a log file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

from rich.console import Console
from rich.table import Table

from hashee.runs.recipe import describe

LOG_WIDTH = 200  # characters per line when stdout is not a terminal


def log_console() -> Console:
    """A console for summaries: a wide one when stdout is a file or a CI log, so no row wraps."""
    return Console() if sys.stdout.isatty() else Console(width=LOG_WIDTH, soft_wrap=True)


def print_summary(results: Mapping[str, Any], console: Console | None = None) -> None:
    """A short table: task, method, reported metrics, speed-ups, where results.json is."""
    console = console or log_console()
    cost = results.get("cost", {})
    table = Table(title=f"{results['task']} / {results['method']} (seed {results['seed']})", show_header=True)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in results.get("metrics", {}).items():
        table.add_row(f"{results.get('reported_split', 'test')} {key}", f"{value:.4f}")
    for key, value in results.get("val_metrics", {}).items():
        table.add_row(f"val {key}", f"{value:.4f}")
    for key in ("flops_speedup", "measured_speedup", "efficiency", "time_s", "time_full_s"):
        if key in cost:
            table.add_row(key, f"{cost[key]:.3f}")
    console.print(table)
    if results.get("recipe"):
        console.print(f"recipe: {describe(results['recipe'])}")
    console.print(f"results: {Path(results['run_dir']) / 'results.json'}")
