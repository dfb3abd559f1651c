"""Canonical results: small, portable, and the docs' tables generated from them (issue 32)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hashee.reports.docs import regenerate
from hashee.reports.export import export_study, portable

ROOT = Path(__file__).resolve().parents[1]
BUDGET_BYTES = 5 * 1024 * 1024
MACHINE_PATH = re.compile(r"(^|[^A-Za-z0-9_.~$-])/(work|tmp|root|home|Users|mnt)/")


def _tracked() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in listed.splitlines() if (ROOT / line).is_file()]


def test_committed_results_stay_within_their_size_budget():
    size = sum(p.stat().st_size for p in _tracked() if p.relative_to(ROOT).parts[0] == "results")
    assert size <= BUDGET_BYTES, f"results/ holds {size / 2**20:.1f} MB, over its {BUDGET_BYTES / 2**20:.0f} MB budget"


def test_no_committed_file_holds_a_machine_path_or_a_regenerable_output():
    """Mutation caught: an exported results.json that keeps its run's absolute ``run_dir``."""
    for path in _tracked():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(("results/", "sweeps/")):
            assert path.suffix not in (".html", ".png", ".log", ".sh", ".csv"), relative
        if path.suffix in (".npz", ".png", ".gz"):
            continue
        found = MACHINE_PATH.search(path.read_text(errors="replace"))
        assert found is None, f"{relative}: machine path near {found.group(0)!r}"


def test_export_keeps_complete_runs_portable(tmp_path):
    """A sweep folder with one complete and one failed run: the study has the complete one only, its paths
    relative or cut, its floats rounded, its predictions copied."""
    glue = "/".join(["", "work", "shared", "data", "glue"])  # a machine path (spelled so this file holds none)
    sweep = tmp_path / "sweep"
    for name, status in (("method=full", "complete"), ("method=pabee", "failed")):
        run = sweep / name
        run.mkdir(parents=True)
        (run / "results.json").write_text(json.dumps({
            "status": status, "run_dir": str(run), "primary": 0.123456789,
            "config": {"data": {"glue_dir": glue, "cache_dir": "~/.cache/x"}},
            "overrides": [f"data.glue_dir={glue}"]}))
        np.savez_compressed(run / "predictions.npz", index=np.arange(3))
    assert export_study(sweep, tmp_path / "study") == 1
    record = json.loads((tmp_path / "study" / "runs" / "method=full" / "results.json").read_text())
    assert record["run_dir"] == "runs/method=full" and record["primary"] == 0.123457
    assert record["config"]["data"] == {"glue_dir": ".../glue", "cache_dir": "~/.cache/x"}
    assert record["overrides"] == ["data.glue_dir=.../glue"]
    assert (tmp_path / "study" / "runs" / "method=full" / "predictions.npz").is_file()
    assert not (tmp_path / "study" / "runs" / "method=pabee").exists()
    assert portable({"a": [1.0000001, str(tmp_path / "x" / "y")]}, tmp_path / "x") == {"a": [1.0, "y"]}


@pytest.mark.parametrize("doc", ["README.md", "docs/results.md", "docs/performance.md"])
def test_every_generated_table_of_the_docs_matches_the_committed_runs(doc):
    """``make docs-check``: regenerating the tables of README.md, docs/results.md and docs/performance.md from results/
    changes nothing.
    Mutation caught: a figure typed into a generated table (or a run changed without regenerating the docs)."""
    text, changed = regenerate(ROOT / doc)
    assert "<!-- hashee-report " in text
    assert not changed, f"out of date: {changed}; run: hashee-report --docs {doc}"
