"""Results you can trust later: the code version in every result, reuse only of the same code, one job one runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hashee.runs import identity
from hashee.runs.identity import code_version, reusable, training_fingerprint
from hashee.runs.lock import LOCK_FILE, acquire, holder
from tests.conftest import compose_config

ROOT = Path(__file__).resolve().parents[1]
JOBS = ("method=full,static", "target_speedup=2")


def _sweep(tmp_path: Path, *overrides: str, env: dict | None = None, wait: bool = True):
    cmd = [sys.executable, "-m", "hashee.cli", "-m", "+sweep=smoke", f"hydra.sweep.dir={tmp_path / 'sweep'}",
           f"data.cache_dir={tmp_path / 'cache'}", *overrides]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    # run from tmp_path: with ``-m`` the working directory comes first on sys.path, before PYTHONPATH
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=600, cwd=tmp_path)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, cwd=tmp_path)


def _summary(stdout: str) -> str:
    return [line for line in stdout.splitlines() if line.startswith("sweep ")][-1]


def _records(tmp_path: Path) -> dict[Path, dict]:
    return {p: json.loads(p.read_text()) for p in (tmp_path / "sweep").rglob("results.json")}


def test_code_version_names_the_commit_the_tree_state_and_the_fingerprint():
    code = code_version()
    assert set(code) == {"package_version", "commit", "dirty", "diff_sha256", "fingerprint"}
    assert code["fingerprint"] == identity.code_fingerprint()
    if (ROOT / ".git").exists():  # an editable install from a checkout
        assert len(code["commit"]) == 40 and isinstance(code["dirty"], bool)
        assert (code["diff_sha256"] is None) == (not code["dirty"])


def test_reuse_needs_the_same_code_unless_resume_is_config():
    """Mutation: comparing the config fingerprint alone (the old rule) makes the first assertion fail."""
    done = {"status": "complete", "config_fingerprint": "f", "code": {"fingerprint": "older-code"}}
    reuse, why = reusable(done, "f")
    assert not reuse and "other code" in why and "older-code" in why
    assert reusable(done, "f", "config") == (True, None)
    assert reusable({**done, "code": {"fingerprint": identity.code_fingerprint()}}, "f") == (True, None)
    assert reusable({k: v for k, v in done.items() if k != "code"}, "f")[0] is False  # code not recorded: re-run
    assert reusable(done, "other config", "config") == (False, None)


def test_a_trained_model_is_keyed_on_the_code(monkeypatch):
    """Mutation: leaving code_fingerprint out of training_fingerprint makes the two keys equal."""
    cfg = compose_config(["backbone=tiny"])
    before = training_fingerprint(cfg)
    monkeypatch.setattr(identity, "code_fingerprint", lambda: "changed")
    assert training_fingerprint(cfg) != before


def test_a_changed_line_of_method_code_reruns_the_finished_jobs_and_resume_config_reuses_them(tmp_path):
    """A copy of ``baselines`` ahead on the path stands for an edit of a method's file (the package's own files
    are never touched). Mutation: a skip decision on the config fingerprint alone makes the second sweep skip."""
    code = tmp_path / "code"
    shutil.copytree(ROOT / "baselines", code / "baselines", ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": f"{code}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    first = _sweep(tmp_path, *JOBS, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    records = _records(tmp_path)
    assert len(records) == 2 and all(r["status"] == "complete" for r in records.values())
    for record in records.values():  # the code fields of issue 34
        assert {"package_version", "commit", "dirty", "diff_sha256", "fingerprint"} <= set(record["code"])
    stamps = {p: p.stat().st_mtime for p in records}

    again = _sweep(tmp_path, *JOBS, env=env)
    assert "0 ran, 2 skipped" in _summary(again.stdout)

    static = code / "baselines" / "static.py"
    static.write_text(static.read_text() + "\n# one changed line\n")
    kept = _sweep(tmp_path, *JOBS, "resume=config", env=env)
    assert "0 ran, 2 skipped" in _summary(kept.stdout), kept.stdout[-2000:]
    assert all(p.stat().st_mtime == stamps[p] for p in records)

    rerun = _sweep(tmp_path, *JOBS, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "2 ran, 0 skipped" in _summary(rerun.stdout)
    assert sum("its results came from other code" in line for line in rerun.stdout.splitlines()) == 2
    new = _records(tmp_path)
    assert {r["code"]["fingerprint"] for r in new.values()} != {r["code"]["fingerprint"] for r in records.values()}


def test_two_sweeps_on_one_directory_run_each_job_once(tmp_path):
    """Mutations: without the job lock both processes run every job (sum of ``ran`` = 8); counting from the
    shared log instead of each process's own entries makes the summaries add up to more than the jobs; without the
    training lock (``train_or_reuse``) the two processes train the full model once each, for its two targets."""
    axes = ("method=full,static", "target_speedup=2,1.5")
    first = _sweep(tmp_path, *axes, wait=False)
    time.sleep(1.0)
    second = _sweep(tmp_path, *axes, wait=False)
    outputs = [proc.communicate(timeout=600)[0] for proc in (first, second)]
    assert all(proc.returncode == 0 for proc in (first, second)), outputs
    ran = skipped = 0
    for output in outputs:
        summary = _summary(output)
        ran += int(summary.split(": ")[1].split(" ran")[0])
        skipped += int(summary.split(", ")[1].split(" skipped")[0])
    assert ran == 4, outputs
    log = [json.loads(line) for line in (tmp_path / "sweep" / "sweep_log.jsonl").read_text().splitlines()]
    assert sorted(e["job"] for e in log if e["status"] == "ran") == sorted({e["job"] for e in log})
    records = _records(tmp_path)
    assert len(records) == 4 and all(r["status"] == "complete" for r in records.values())
    full = [r for r in records.values() if r["method"] == "full"]
    assert sum("reused_from" in r["train"] for r in full) == 1  # one training for both targets
    assert not list((tmp_path / "sweep").rglob(LOCK_FILE))  # every lock released


def test_a_live_holder_keeps_the_lock_and_a_dead_holders_lock_is_taken_over(tmp_path):
    """Mutation: an acquire that ignores the held flock (plain file existence check, or none) fails the first
    assertion; one that refuses any existing lock file fails the takeover."""
    held = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from hashee.runs.lock import acquire; lock = acquire(sys.argv[1]); "
        "print('held', flush=True); time.sleep(60)"), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "held"
        assert acquire(tmp_path) is None
        assert holder(tmp_path)["pid"] == held.pid
    finally:
        held.kill()
        held.wait()
    assert (tmp_path / LOCK_FILE).exists()  # killed: its file stays behind, stale
    lock = acquire(tmp_path)
    assert lock is not None and holder(tmp_path)["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_report_marks_runs_of_mixed_code():
    from hashee.reports.collect import mixed_code_note

    rows = [{"source": "run", "code": "a"}, {"source": "run", "code": "a"}, {"source": "curve", "code": "b"}]
    assert mixed_code_note(rows) is None
    note = mixed_code_note(rows + [{"source": "run", "code": None}])
    assert "2 code versions" in note and "not recorded (1 runs)" in note


@pytest.mark.parametrize("value", ["sometimes", "yes"])
def test_a_bad_resume_policy_is_one_line(tmp_path, value):
    proc = _sweep(tmp_path, "method=full", f"resume={value}")
    assert f"resume={value}: choose from code, config" in proc.stderr
