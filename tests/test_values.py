"""Values, not keys: a complete results.json is only reused for the configuration that produced it; the
``slow`` marker says where the Ray test really runs.

(The other value checks live next to the runs they check: finite metrics of the end-to-end runs in
test_baselines.py, the sample std of hashee-report in test_report.py, the measured generation speed-up
in test_generation.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from hashee.cli import hashee_bench as cli
import hashee.experiments.dispatch
from hashee.experiments.steps import start_run
from hashee.runs.identity import is_complete
from hashee.runs.results import read_results, write_results


@pytest.fixture
def fake_runs(monkeypatch):
    """``hashee.experiments.dispatch.run_experiment`` replaced by one that starts results.json the real way (``start_run``:
    the run's identity, its fingerprint included) and completes it at once; returns the calls."""
    calls = []

    def run_experiment(cfg, run_dir, fingerprint=None):
        results = start_run(cfg, run_dir, fingerprint)
        results.update(primary=0.5, val_primary=0.5)
        write_results(run_dir, results, status="complete")
        calls.append(fingerprint)
        return results

    monkeypatch.setattr(hashee.experiments.dispatch, "run_experiment", run_experiment)
    return calls


def run_cli(monkeypatch, run_dir, *overrides: str) -> None:
    """``hashee-bench`` in this process, as from the command line (no logging set-up)."""
    argv = ["hashee-bench", "backbone=tiny", "logger=none", "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled", f"hydra.run.dir={run_dir}", *overrides]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        cli.app()
    finally:
        GlobalHydra.instance().clear()


def test_complete_results_of_another_configuration_are_run_again(tmp_path, monkeypatch, fake_runs):
    run_dir = tmp_path / "job"
    run_cli(monkeypatch, run_dir)
    assert len(fake_runs) == 1
    first = read_results(run_dir)
    assert first["status"] == "complete" and first["config_fingerprint"] == fake_runs[0]
    assert is_complete(first, fake_runs[0])

    run_cli(monkeypatch, run_dir)  # complete, same configuration: skipped
    assert len(fake_runs) == 1

    stale = dict(first, config_fingerprint="0" * 24)  # complete, but produced by another configuration
    write_results(run_dir, stale, status="complete")
    assert not is_complete(stale, fake_runs[0])
    run_cli(monkeypatch, run_dir)
    assert len(fake_runs) == 2 and fake_runs[1] == fake_runs[0]
    assert read_results(run_dir)["config_fingerprint"] == fake_runs[0]

    run_cli(monkeypatch, run_dir, "seed=1")  # the same directory, another seed: a new computation
    assert len(fake_runs) == 3 and fake_runs[2] != fake_runs[0]



def test_the_slow_marker_says_truthfully_where_the_ray_test_runs():
    """`make test` installs the dev and launchers extras only, so the Ray test is skipped there; the marker
    (shown by `pytest --markers`) and docs/usage.md must say it runs with `make test-ray`."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    makefile = (root / "Makefile").read_text()
    default_install = [line for line in makefile.splitlines() if "pip install" in line and '-e "' in line][0]
    assert "ray" not in default_install and ".[ray]" in makefile.split("test-ray:")[1]
    markers = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    slow = [m for m in markers if m.startswith("slow:")][0]
    assert "make test-ray" in slow and "default run" not in slow
    readme = " ".join((root / "docs" / "usage.md").read_text().split("## Tests")[1].split("## ")[0].split())
    assert "runs only with `make test-ray`" in readme
