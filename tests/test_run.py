"""End-to-end runs on the tiny backbone: results.json contract, determinism, HashEE, CLI errors, W&B."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

COST_KEYS = {"flops", "flops_full", "flops_speedup", "time_s", "time_full_s", "measured_speedup", "efficiency",
             "batch_size", "threads", "allocator", "examples"}


def _read(path: Path) -> dict:
    return json.loads((path / "results.json").read_text())


def _assert_finite(metrics: dict) -> None:
    """Every metric a finite number: a NaN (e.g. the correlation of a constant prediction) passes checks on the
    metric names and loose bounds that compare with ``in`` or ``!=``."""
    assert metrics and all(isinstance(v, float) and math.isfinite(v) for v in metrics.values()), metrics


def test_full_run_writes_complete_results(run_tiny, tmp_path):
    results = run_tiny("method=full")
    saved = _read(tmp_path / "run")
    assert list(saved)[-1] == "status" and saved["status"] == "complete"
    assert saved["task"] == "rotten_tomatoes" and saved["method"] == "full" and saved["seed"] == 0
    assert saved["reported_split"] == "test"
    assert set(saved["metrics"]) >= {"accuracy"} and saved["primary_metric"] == "accuracy"
    assert saved["primary"] == saved["metrics"]["accuracy"]
    assert set(saved["val_metrics"]) >= {"accuracy"}
    _assert_finite(saved["metrics"])
    _assert_finite(saved["val_metrics"])
    assert math.isfinite(saved["primary"]) and math.isfinite(saved["val_primary"])
    assert COST_KEYS <= set(saved["cost"])
    assert saved["cost"]["flops_speedup"] == pytest.approx(1.0)
    assert saved["cost"]["time_s"] > 0 and saved["cost"]["time_full_s"] > 0
    assert all(math.isfinite(saved["cost"][k]) for k in ("flops", "flops_full", "time_s", "time_full_s",
                                                          "measured_speedup", "efficiency"))
    assert saved["cost"]["allocator"] == ("keep_freed_memory" if sys.platform.startswith("linux") else "default")
    assert saved["config"]["backbone"]["name"] == "tiny"
    assert saved["versions"]["torch"].startswith("2.")
    assert saved["train"]["stages"][0]["best_checkpoint"]
    assert results["metrics"] == saved["metrics"]


def test_same_seed_gives_identical_metrics(run_tiny):
    first = run_tiny("method=full", name="a")
    second = run_tiny("method=full", name="b")
    assert first["metrics"] == second["metrics"]
    assert first["val_metrics"] == second["val_metrics"]
    _assert_finite(first["metrics"])  # equal, and numbers: not two runs that both failed the same way
    _assert_finite(first["val_metrics"])


def test_hashee_run_reports_speedup_and_hash(run_tiny, tmp_path):
    # enough training text that most test tokens were seen (unseen ones run to the last layer)
    results = run_tiny("method=hashee", "hash=frequency", "target_speedup=2", "data.train_limit=3000")
    saved = _read(tmp_path / "run")
    assert saved["status"] == "complete" and saved["method"] == "hashee"
    described = saved["method_info"]["prepare"]["hash"]
    assert described["name"] == "frequency" and described["mode"] == "target"
    # the realized FLOPs speed-up on the reported split is measured, and close to the target
    assert results["cost"]["flops_speedup"] == pytest.approx(2.0, rel=0.15)
    _assert_finite(results["metrics"])
    _assert_finite(results["val_metrics"])
    assert results["cost"]["flops_speedup"] != described["expected_train_speedup"]


def test_regression_task_runs_end_to_end(run_tiny):
    """STS-B end to end: both correlations reported, and finite. Mutation caught: a regressor whose predictions
    collapse to a constant (e.g. ``preds = preds * 0`` in ``compute_metrics``' regression case): its correlations
    are then exactly 0 (hashee.core.metrics), which the metric names alone never noticed."""
    fixtures = Path(__file__).parent / "fixtures" / "glue"
    results = run_tiny("task=stsb", f"data.glue_dir={fixtures}", "data.val_size=0.2", "data.train_limit=null",
                       "data.test_limit=null")
    assert {"pearson", "spearman"} <= set(results["metrics"]) and results["primary_metric"] == "spearman"
    # a regressor that collapsed to a constant has correlations of exactly 0: the names alone would pass
    _assert_finite(results["metrics"])
    assert results["metrics"]["pearson"] != 0.0 and results["metrics"]["spearman"] != 0.0
    _assert_finite(results["val_metrics"])
    assert math.isfinite(results["primary"]) and math.isfinite(results["val_primary"])
    assert all(math.isfinite(bound) for bound in results["primary_ci95"])


def _cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "hashee.cli", f"hydra.run.dir={tmp_path / 'cli'}", f"data.cache_dir={tmp_path / 'c'}",
           "backbone=tiny", "logger=none", "progress_bar=false", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_bad_data_fails_with_one_clear_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngood movie\t1\nbad movie\t7\n")
    proc = _cli(tmp_path, "task=local", f"task.files.train={bad}", f"task.files.test={bad}",
                "task.text_columns=[sentence]", "task.num_labels=2")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(bad) in lines[0] and ":3:" in lines[0]
    assert "Traceback" not in proc.stderr
    assert _read(tmp_path / "cli")["status"] == "failed"


def test_wandb_offline_run_is_written_under_the_run_dir(run_tiny, tmp_path):
    run_tiny("logger=wandb", "logger.mode=offline")
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_target_independent_training_is_reused_across_targets(run_tiny, tmp_path):
    first = run_tiny("method=pabee", "target_speedup=1.5", name="t15")
    second = run_tiny("method=pabee", "target_speedup=2", name="t2")
    assert "reused_from" not in first["train"] and second["train"]["reused_from"].endswith(".pt")
    assert second["train"]["stages"] == first["train"]["stages"]
    # same weights: the validation curve over the knob is identical, only the chosen point moves
    assert second["method_info"]["operating_point"]["val_curve"] == first["method_info"]["operating_point"]["val_curve"]
    assert "reused_from" not in run_tiny("method=pabee", "target_speedup=3", "reuse_training=false", name="t3")["train"]


@pytest.mark.parametrize("method", ["hashee", "static"])
def test_training_that_depends_on_the_target_is_not_reused(run_tiny, method):
    run_tiny(f"method={method}", "target_speedup=1.5", name="a")
    assert "reused_from" not in run_tiny(f"method={method}", "target_speedup=2", name="b")["train"]
