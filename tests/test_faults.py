"""Faults leave a true record and never poison later runs: damaged caches are set aside and rebuilt,
interrupted or crashed runs say so in results.json, and bad numbers are refused in one line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hashee.runs.schema import check_config
from hashee.core.errors import ConfigError
from hashee.runs.identity import is_complete
from tests.conftest import TINY_RUN, compose_config

# The real CLI, with the code fingerprint of the trained-model cache pinned (so that edits of the
# sources while a test runs do not change the cache's file names) and, when FAULT is set, a fault
# injected at the second training batch: FAULT=SIGINT|SIGTERM sends that signal to the process,
# FAULT=raise raises RuntimeError("injected fault").
CLI = '''
import os, signal, time
import pytorch_lightning as pl
import hashee.runs.identity

hashee.runs.identity.code_fingerprint = lambda: "pinned"
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if started with SIGINT ignored

class Fault(pl.Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx == 1:
            fault = os.environ["FAULT"]
            if fault == "raise":
                raise RuntimeError("injected fault")
            os.kill(os.getpid(), getattr(signal, fault))
            time.sleep(10)  # the signal's handler runs here, at the latest when the sleep is interrupted

if os.environ.get("FAULT"):
    init = pl.Trainer.__init__
    def with_fault(self, *args, callbacks=None, **kwargs):
        init(self, *args, callbacks=[*(callbacks or []), Fault()], **kwargs)
    pl.Trainer.__init__ = with_fault

from hashee.cli.hashee_bench import main
main()
'''
SMALL = ["backbone=tiny", "logger=none", "progress_bar=false", "data.train_limit=96", "data.val_limit=48",
         "data.test_limit=64", "data.max_length=48", "trainer.max_epochs=1", "eval.timing_repeats=1",
         "eval.warmup_batches=1"]


def _read(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _cli(tmp_path: Path, *overrides: str, fault: str = "") -> subprocess.CompletedProcess:
    script = tmp_path / "hashee_bench.py"
    script.write_text(CLI)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "FAULT": fault}
    multirun = "-m" in overrides
    cmd = [sys.executable, str(script), *(["-m"] if multirun else []), f"data.cache_dir={tmp_path / 'cache'}",
           *SMALL, *[o for o in overrides if o != "-m"]]
    if not multirun:
        cmd.append(f"hydra.run.dir={tmp_path / 'cli'}")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(autouse=True)
def pinned_code_fingerprint(monkeypatch):
    """Edits of the sources while a test runs must not change the trained-model cache's file names."""
    monkeypatch.setattr("hashee.runs.identity.code_fingerprint", lambda: "pinned")


# ----------------------------------------------------------------------------- damaged caches


@pytest.mark.parametrize("overrides,folder,pattern", [
    (("method=pabee", "target_speedup=2"), "trained", "*.pt"),
    (("method=hashee", "hash=frequency", "target_speedup=2"), "hashes", "hash-*.pt"),
    (("method=full",), "tokenized", "tok-*-train-*.arrow"),
])
def test_truncated_cache_file_is_set_aside_and_rebuilt(run_tiny, tmp_path, caplog, overrides, folder, pattern):
    first = run_tiny(*overrides, name="first")
    [cached] = (tmp_path / "cache" / folder).glob(pattern)
    os.truncate(cached, 1000)

    with caplog.at_level(logging.WARNING, logger="hashee.core.cache"):
        second = run_tiny(*overrides, name="second")
    saved = _read(tmp_path / "second")
    assert saved["status"] == "complete"
    [repair] = saved["cache_repairs"]
    assert repair["file"] == str(cached) and repair["reason"]
    aside = Path(repair["set_aside_to"])
    assert aside.name.startswith(f"{cached.name}.damaged-") and aside.stat().st_size == 1000  # kept, not deleted
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "hashee.core.cache"]
    assert len(warnings) == 1 and str(cached) in warnings[0] and repair["reason"] in warnings[0]
    assert cached.stat().st_size > 1000  # rebuilt
    assert second["val_metrics"] == first["val_metrics"]  # same config, same rebuilt artifact, same result
    if folder == "trained":
        assert "reused_from" not in second["train"]  # retrained, not loaded
    if folder == "hashes":
        assert second["method_info"]["prepare"]["hash_from_cache"] is False
    assert "cache_repairs" not in _read(tmp_path / "first")
    run_tiny(*overrides, name="third")
    assert "cache_repairs" not in _read(tmp_path / "third")  # a later run repairs nothing: the cache is sound


def touch(path: str) -> None:
    Path(path).touch()


class Touch:
    """A pickled object other than tensors and plain data: unpickling it runs code (creates a file)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return touch, (str(self.path),)


def test_cached_model_with_a_pickled_object_is_refused(run_tiny, tmp_path, caplog):
    run_tiny("method=pabee", "target_speedup=2", name="first")
    [cached] = (tmp_path / "cache" / "trained").glob("*.pt")
    saved = torch.load(cached, weights_only=True)
    marker = tmp_path / "code-ran"
    saved["train"] = {"stages": [], "train_time_s": 0.0, "payload": Touch(marker)}  # the old format's key
    torch.save(saved, cached)

    with caplog.at_level(logging.WARNING, logger="hashee.core.cache"):
        second = run_tiny("method=pabee", "target_speedup=1.5", name="second")
    assert not marker.exists()  # never unpickled
    assert "reused_from" not in second["train"]  # retrained
    results = _read(tmp_path / "second")
    assert results["status"] == "complete"
    [repair] = results["cache_repairs"]
    assert "pickled object other than tensors and plain data" in repair["reason"] and "touch" in repair["reason"]
    assert any(str(cached) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_damaged_trained_model_does_not_stop_the_cli(tmp_path):
    """The issue's recipe: train, truncate the cached model, run another target: it completes and says why."""
    first = _cli(tmp_path, "method=pabee", "target_speedup=2")
    assert first.returncode == 0, first.stderr[-2000:]
    [cached] = (tmp_path / "cache" / "trained").glob("*.pt")
    os.truncate(cached, 1000)
    second = _cli(tmp_path, "method=pabee", "target_speedup=1.5")
    assert second.returncode == 0, second.stderr[-2000:]
    output = second.stdout + second.stderr
    assert "PytorchStreamReader" in output and "Traceback" not in output
    warnings = [line for line in output.splitlines() if "damaged cache file" in line]
    assert len(warnings) == 1 and str(cached) in warnings[0]
    results = _read(tmp_path / "cli")
    assert results["status"] == "complete" and results["cache_repairs"][0]["file"] == str(cached)


# ----------------------------------------------------------------------------- interrupted and failed runs


@pytest.mark.parametrize("fault,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_signal_during_training_ends_interrupted_and_caches_nothing(tmp_path, fault, code):
    proc = _cli(tmp_path, "method=pabee", "target_speedup=2", fault=fault)
    assert proc.returncode == code, proc.stderr[-2000:]
    results = _read(tmp_path / "cli")
    assert results["status"] == "interrupted" and results["error"] == f"interrupted by {fault}"
    assert "metrics" not in results  # a half-trained model is never evaluated
    assert not list((tmp_path / "cache" / "trained").glob("*.pt"))  # nor cached for other targets


def test_exception_in_a_single_run_ends_failed_with_its_line(tmp_path):
    proc = _cli(tmp_path, "method=full", fault="raise")
    assert proc.returncode == 1
    results = _read(tmp_path / "cli")
    assert results["status"] == "failed" and results["error"] == "RuntimeError: injected fault"


def test_interrupted_sweep_job_is_resumed(tmp_path):
    sweep = ["-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", "method=pabee", "target_speedup=2"]
    stopped = _cli(tmp_path, *sweep, fault="SIGTERM")
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    [job] = (tmp_path / "sweep").rglob("results.json")
    assert json.loads(job.read_text())["status"] == "interrupted"
    rerun = _cli(tmp_path, *sweep)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "1 ran, 0 skipped, 0 failed" in rerun.stdout
    assert json.loads(job.read_text())["status"] == "complete"


def test_only_complete_results_are_skipped_by_a_sweep():
    for status in ("running", "failed", "interrupted"):
        assert not is_complete({"status": status, "config_fingerprint": "f"}, "f")
    assert is_complete({"status": "complete", "config_fingerprint": "f"}, "f")


# ----------------------------------------------------------------------------- numeric knobs


@pytest.mark.parametrize("override", ["target_speedup=abc", "seed=abc", "data.batch_size=abc", "optim.lr=abc",
                                      "trainer.max_epochs=abc", "hashee.depth=two", "seed=1.5",
                                      "recipe.lr=abc", "recipe.epochs=2.5"])
def test_numeric_knob_that_is_not_a_number_is_named(override):
    key, value = override.split("=")
    with pytest.raises(ConfigError, match=rf"^{key}={value}: not a (whole )?number$"):
        check_config(compose_config(TINY_RUN + [override]))


def test_numeric_knobs_of_the_shipped_configs_pass():
    for overrides in ([], ["method=hashee", "hashee.depth=3", "optim.lr=1e-4"], ["trainer=ddp"],
                      ["experiment=difficulty_model"], ["task=bbc_headlines"], ["target_speedup=2", "seed=3"]):
        check_config(compose_config(TINY_RUN + overrides))


def test_non_numeric_knob_exits_2_with_one_line(tmp_path):
    proc = _cli(tmp_path, "target_speedup=abc")
    assert proc.returncode == 2
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        "error: target_speedup=abc: not a number"]
    assert "Traceback" not in proc.stderr and "ValueError" not in proc.stderr
    assert _read(tmp_path / "cli")["status"] == "failed"
