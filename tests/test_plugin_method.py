"""A method defined outside the package (tests/fixtures/plugin: its class on PYTHONPATH, its config found through
``hydra.searchpath``) runs in a sweep beside the built-ins and is reported like them: FLOPs, intervals, the rows at
equal realized speed-up. Nothing in ``hashee/``, ``baselines/`` or ``conf/`` names it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "fixtures" / "plugin"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """``hashee-bench -m +sweep=smoke method=full,static,toy_maxprob`` with the plugin on the paths, and its report
    (``report_at_end``)."""
    root = tmp_path_factory.mktemp("plugin")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HASHEE_CACHE": str(root / "cache"),
           "PYTHONPATH": os.pathsep.join([str(PLUGIN), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "hashee.cli", "-m", "+sweep=smoke", "method=full,static,toy_maxprob",
           "target_speedup=1.5,2", "seed=0,1", "report_at_end=true", f"hydra.searchpath=[file://{PLUGIN / 'conf'}]",
           f"hydra.sweep.dir={root / 'sweep'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return root / "sweep"


def test_the_plugin_is_nowhere_in_the_package():
    for folder in ("hashee", "baselines", "conf"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".yaml"):
                assert "toy_maxprob" not in path.read_text(), path


def test_its_runs_record_its_contract_and_an_operating_point(sweep):
    runs = [json.loads(p.read_text()) for p in sweep.rglob("results.json")]
    mine = [r for r in runs if r["method"] == "toy_maxprob"]
    assert len(runs) == 12 and len(mine) == 4 and all(r["status"] == "complete" for r in runs)
    for run in mine:
        assert run["method_contract"]["name"] == "toy_maxprob" and run["method_contract"]["operating_point"] == "calibrated"
        assert run["method_info"]["operating_point"]["knob"] == "threshold"
        assert run["cost"]["flops_speedup"] >= 1.0 and (Path(run["run_dir"]) / "predictions.npz").is_file()


def test_the_report_treats_it_as_a_method(sweep):
    report = (sweep / "report" / "report.md").read_text()
    nominal = report.split("## Every run at its nominal target")[1].split("\n## ")[0]
    rows = [line.split(" | ") for line in nominal.splitlines() if line.startswith("| rotten_tomatoes | toy_maxprob |")]
    assert {row[2] for row in rows} >= {"1.500", "2.000"} and all(float(row[6]) >= 1.0 for row in rows)  # FLOPs x
    intervals = report.split("## Intervals")[1].split("\n## ")[0]
    assert sum("| toy_maxprob |" in line for line in intervals.splitlines()) == 2  # 1.5x and 2x, 2 seeds each
    equal = report.split("## Every run at its nominal target")[0]
    assert "toy_maxprob" in equal  # read off its curve at equal realized speed-up, or said to be not reached
