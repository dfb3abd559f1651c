"""Sweeps: validation before any job, fingerprints, skip/resume after a kill, the end-of-sweep summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hashee.cli.sweep import swept_values, validate_sweep
from hashee.core.errors import ConfigError
from hashee.runs.identity import config_fingerprint
from tests.conftest import compose_config

OPTIONS = {"task": ["sst2", "rotten_tomatoes"], "method": ["full", "hashee"], "hash": ["frequency"],
           "backbone": ["tiny"], "trainer": ["cpu"], "logger": ["none"]}


def test_swept_values_expand_every_axis():
    values = swept_values(["method=full,hashee", "target_speedup=1.5,2", "seed=3", "+sweep=smoke"])
    assert values["method"] == ["full", "hashee"]
    assert values["target_speedup"] == [1.5, 2]
    assert values["seed"] == [3] and values["sweep"] == ["smoke"]


@pytest.mark.parametrize("overrides,message", [
    (["method=full,nope"], "unknown method 'nope'"),
    (["task=sst3"], "unknown task 'sst3'"),
    (["target_speedup=0.5,2"], "must be >= 1"),
    (["target_speedup=7"], "above the backbone depth"),
    (["hashee.target_speedup=1.5,2"], r"^hashee.target_speedup=1.5,2: the speed-up knob is target_speedup$"),
    (["target_speedup=abc,2"], "target_speedup=abc: not a number"),
])
def test_bad_sweep_values_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_sweep(swept_values(overrides), OPTIONS, depth=6)


def test_an_interval_search_space_is_sampled_not_enumerated():
    values = swept_values(["recipe.lr=tag(log, interval(1e-5, 1e-4))", "recipe.epochs=range(2, 5)", "method=full"])
    assert "recipe.lr" not in values and values["recipe.epochs"] == [2, 3, 4] and values["method"] == ["full"]


def test_good_sweep_passes():
    validate_sweep(swept_values(["method=full,hashee", "target_speedup=1.5,6", "task=sst2"]), OPTIONS, depth=6)


def test_fingerprint_ignores_logging_but_not_what_is_computed():
    base = config_fingerprint(compose_config(["backbone=tiny"]))
    assert config_fingerprint(compose_config(["backbone=tiny", "logger=none", "progress_bar=false"])) == base
    assert config_fingerprint(compose_config(["backbone=tiny", "seed=1"])) != base
    assert config_fingerprint(compose_config(["backbone=tiny", "method=hashee"])) != base


def _sweep(tmp_path: Path, *overrides: str, wait: bool = True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "hashee.cli", "-m", "+sweep=smoke", f"hydra.sweep.dir={tmp_path / 'sweep'}",
           f"data.cache_dir={tmp_path / 'cache'}", *overrides]
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)


def _complete(sweep_dir: Path) -> list[Path]:
    done = []
    for path in sweep_dir.rglob("results.json"):
        try:
            if json.loads(path.read_text()).get("status") == "complete":
                done.append(path)
        except json.JSONDecodeError:
            pass
    return done


@pytest.mark.parametrize("axis,message", [
    ("method=full,nope", "error: unknown method 'nope' in the sweep"),
    ("target_speedup=2,0.5", "target_speedup=0.5: a target speed-up must be >= 1"),
    ("target_speedup=2,9", "above the backbone depth (4 layers)"),
])
def test_bad_sweep_fails_before_any_job_starts(tmp_path, axis, message):
    proc = _sweep(tmp_path, axis)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not list((tmp_path / "sweep").rglob("results.json"))


def test_killed_sweep_resumes_and_skips_completed_jobs(tmp_path):
    axes = ("method=full,hashee,pabee", "target_speedup=2")
    proc = _sweep(tmp_path, *axes, wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and not _complete(tmp_path / "sweep"):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # kill the sweep mid-way
    proc.wait()
    done_before = _complete(tmp_path / "sweep")
    assert 1 <= len(done_before) < 3
    stamps = {p: p.stat().st_mtime for p in done_before}

    rerun = _sweep(tmp_path, *axes)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = [line for line in rerun.stdout.splitlines() if line.startswith("sweep ")][-1]
    assert f"{len(done_before)} skipped" in summary and "0 failed" in summary
    assert f"{3 - len(done_before)} ran" in summary
    assert len(_complete(tmp_path / "sweep")) == 3
    assert all(p.stat().st_mtime == stamps[p] for p in done_before)  # completed jobs were not re-run


def test_failing_job_does_not_stop_the_others(tmp_path):
    # a regression task with deebert is refused by that job only; the other job still completes
    fixtures = Path(__file__).parent / "fixtures" / "glue"
    proc = _sweep(tmp_path, "task=stsb", f"data.glue_dir={fixtures}", "data.train_limit=null", "data.test_limit=null",
                  "method=deebert,full", "target_speedup=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = [line for line in proc.stdout.splitlines() if line.startswith("sweep ")][-1]
    assert "1 ran" in summary and "1 failed" in summary
    assert any("failed" in line and "deebert" in line for line in proc.stdout.splitlines())


@pytest.mark.parametrize("launcher,plugin", [("joblib", "hydra_plugins.hydra_joblib_launcher"),
                                             ("submitit_local", "hydra_plugins.hydra_submitit_launcher")])
def test_smoke_sweep_runs_on_local_launchers(tmp_path, launcher, plugin):
    pytest.importorskip(plugin)
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    proc = _sweep(tmp_path, f"hydra/launcher={launcher}", *extra, "method=full,hashee", "target_speedup=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = [line for line in proc.stdout.splitlines() if line.startswith("sweep ")][-1]
    assert "2 ran" in summary and "0 failed" in summary
    assert len(_complete(tmp_path / "sweep")) == 2


@pytest.mark.slow
def test_smoke_sweep_runs_on_a_local_ray(tmp_path):
    pytest.importorskip("ray", reason="hydra/launcher=ray needs pip install -e '.[ray]' (make test-ray)")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    # a local Ray (started and stopped by the launcher) on this machine's CPUs, no dashboard
    proc = _sweep(tmp_path, "hydra/launcher=ray", "+hydra.launcher.ray.init.include_dashboard=false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = [line for line in proc.stdout.splitlines() if line.startswith("sweep ")][-1]
    assert "8 ran, 0 skipped, 0 failed" in summary  # the whole smoke sweep: 4 methods x 2 target speed-ups
    assert len(_complete(tmp_path / "sweep")) == 8


SHIPPED_SWEEPS = sorted(p.stem for p in (Path(__file__).parents[1] / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED_SWEEPS)
def test_every_shipped_sweep_composes_and_its_axes_are_valid(name):
    """Each sweeps/<name>.yaml composes with the root config, and its axes pass the checks a multirun starts with."""
    from hydra import compose, initialize_config_module

    from hashee.cli.sweep import _group_options, _sweeper_param_overrides

    if name == "tune":
        pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the `tune` extra is not installed")
        import hashee.cli.hashee_bench  # noqa: F401 - registers hydra/sweeper/sampler=default_first, as the CLI does
    with initialize_config_module(config_module="hashee_conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"+sweep={name}"], return_hydra_config=True)
        overrides = _sweeper_param_overrides(cfg)
        assert overrides, f"sweep {name} sweeps nothing"
        validate_sweep(swept_values(overrides), _group_options(cfg), depth=6)


def test_the_depth_sweep_gives_both_backbones_one_budget():
    cfg = compose_config(["+sweep=depth"])
    assert cfg.data.train_limit == 4000 and cfg.trainer.max_epochs == 2 and cfg.task.name == "sst2"
    assert cfg.optim.lr == cfg.task.recipe.lr


def test_an_unknown_demo_job_is_refused_in_one_line():
    """Mutation caught: ``demo`` left out of CHECKED_GROUPS (Hydra's multi-line composition error instead)."""
    with pytest.raises(ConfigError, match="unknown demo 'nope'"):
        validate_sweep(swept_values(["+demo=full,nope"]), {"demo": ["full", "hashee_2x"]}, depth=6)
