"""Hydra's Optuna sweeper optimises the validation metric, never the reported split's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the `tune` extra (hydra-optuna-sweeper) is not installed")

TINY = ["backbone=tiny", "logger=none", "progress_bar=false", "data.train_limit=96", "data.val_limit=48",
        "data.test_limit=64", "data.max_length=48", "eval.timing=false"]


def test_the_tune_sweep_maximises_the_validation_metric(tmp_path):
    """`+sweep=tune` (Optuna, seeded TPE) with 2 trials: its best value is a validation metric."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HASHEE_CACHE": str(tmp_path / "cache")}
    sweep_dir = tmp_path / "tune"
    recipes = tmp_path / "recipes"
    cmd = [sys.executable, "-m", "hashee.cli", "-m", "+sweep=tune", "hydra.sweeper.n_trials=2",
           "recipe.lr=interval(1e-5,1e-3)", "recipe.epochs=1", f"tune.recipe_dir={recipes}",
           f"hydra.sweep.dir={sweep_dir}", *TINY]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())["best_value"]
    trials = [json.loads(p.read_text()) for p in sweep_dir.rglob("results.json")]
    assert len(trials) == 2 and all(t["status"] == "complete" for t in trials)
    assert best == pytest.approx(max(t["val_primary"] for t in trials))
    assert any(t["val_primary"] != t["primary"] for t in trials), "val and test coincide: the check would mean nothing"
    # the best trial's recipe (as it ran: results.json records it) is written where recipe=tuned finds it
    written = yaml.safe_load((recipes / "tiny" / "rotten_tomatoes" / "full.yaml").read_text())
    best_trial = max(trials, key=lambda t: t["val_primary"])
    assert written["kind"] == "tuned" and f"{best:.4f}" in written["source"]
    assert {k: written[k] for k in ("epochs", "lr", "batch_size", "warmup_ratio")} == pytest.approx(
        {k: best_trial["recipe"][k] for k in ("epochs", "lr", "batch_size", "warmup_ratio")})
