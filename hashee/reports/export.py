"""Canonical results: a study's runs copied small and portable into ``results/<study>/`` (issue 32).

Each complete run keeps what the report needs: ``results.json`` (compact, floats to 6 significant digits, every
absolute path made relative to the study folder or cut to its last part: nothing of the machine it ran on) and
its per-example outputs (``predictions.npz``, or a difficulty run's ``difficulty.npz``; already compressed).
Nothing regenerable is kept: ``hashee-report results/<study>`` rebuilds
report.md, report.html and the plots (``make report`` does every study).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hashee.runs.results import PER_EXAMPLE_FILES, RESULTS_FILE, is_complete

SIGNIFICANT = 6
RUNS = "runs"


def portable_path(text: str, root: Path) -> str:
    """An absolute path as a path relative to ``root`` when inside it, else ``.../<last part>``."""
    path = Path(text)
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return f".../{path.name}"


def is_absolute_path(text: str) -> bool:
    return text.startswith("/") and len(text) > 1 and "\n" not in text and " " not in text.split("/")[1]


def portable(value: Any, root: Path) -> Any:
    """``value`` with floats rounded to :data:`SIGNIFICANT` digits and absolute paths made portable."""
    if isinstance(value, dict):
        return {key: portable(item, root) for key, item in value.items()}
    if isinstance(value, list):
        return [portable(item, root) for item in value]
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT}g}")
    if isinstance(value, str):
        if is_absolute_path(value):
            return portable_path(value, root)
        if "=/" in value:  # a command-line override that names a path: key=/abs/path
            key, _, rest = value.partition("=")
            return f"{key}={portable_path(rest, root)}" if is_absolute_path(rest) else value
    return value


def export_study(sweep_dir: Path, out: Path) -> int:
    """Copy every complete run under ``sweep_dir`` into ``out/runs/<its relative folder>``; returns how many."""
    count = 0
    for path in sorted(Path(sweep_dir).rglob(RESULTS_FILE)):
        try:
            results = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not is_complete(results):
            continue
        target = Path(out) / RUNS / path.parent.relative_to(sweep_dir)
        target.mkdir(parents=True, exist_ok=True)
        record = portable({**results, "run_dir": f"{RUNS}/{path.parent.relative_to(sweep_dir).as_posix()}"},
                          Path(sweep_dir))
        (target / RESULTS_FILE).write_text(json.dumps(record, separators=(",", ":"), sort_keys=False) + "\n")
        for name in PER_EXAMPLE_FILES:
            if (path.parent / name).is_file():
                shutil.copyfile(path.parent / name, target / name)
        count += 1
    return count
