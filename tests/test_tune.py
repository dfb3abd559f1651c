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


def _tune(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    """``hashee-bench -m +sweep=tune`` on the tiny backbone, sweep in ``tmp_path/tune``, recipes in ``tmp_path/recipes``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HASHEE_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "hashee.cli", "-m", "+sweep=tune", f"tune.recipe_dir={tmp_path / 'recipes'}",
           f"hydra.sweep.dir={tmp_path / 'tune'}", *TINY, *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_the_tune_sweep_maximises_the_validation_metric(tmp_path):
    """`+sweep=tune` (Optuna, seeded TPE) with 2 trials: its best value is a validation metric."""
    sweep_dir = tmp_path / "tune"
    recipes = tmp_path / "recipes"
    done = _tune(tmp_path, "hydra.sweeper.n_trials=2", "recipe.lr=interval(1e-5,1e-3)", "recipe.epochs=1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "SweepCallback.on_multirun_start raised" not in done.stderr  # the up-front checks ran (Hydra only warns)
    assert "[sweep] job 1/2" in done.stdout, done.stdout[-2000:]
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())["best_value"]
    trials = [json.loads(p.read_text()) for p in sweep_dir.rglob("results.json")]
    assert len(trials) == 2 and all(t["status"] == "complete" for t in trials)
    assert best == pytest.approx(max(t["val_primary"] for t in trials))
    assert any(t["val_primary"] != t["primary"] for t in trials), "val and test coincide: the check would mean nothing"
    # the best trial's recipe (as it ran: results.json records it) is written where recipe=tuned finds it
    written = yaml.safe_load((recipes / "tiny" / "rotten_tomatoes" / "full.yaml").read_text())
    best_trial = max(trials, key=lambda t: t["val_primary"])
    assert written["kind"] == "tuned" and f"{best:.4f}" in written["source"]
    header = (recipes / "tiny" / "rotten_tomatoes" / "full.yaml").read_text().splitlines()[1]
    assert "hydra.sweeper.n_trials=2" in header and "+sweep=tune" in header, header
    assert {k: written[k] for k in ("epochs", "lr", "batch_size", "warmup_ratio")} == pytest.approx(
        {k: best_trial["recipe"][k] for k in ("epochs", "lr", "batch_size", "warmup_ratio")})
    # trial 0 is the task's default recipe (rotten_tomatoes: lr 5e-5, warmup 0.1), even with lr's range overridden
    assert any(t["recipe"]["lr"] == pytest.approx(5e-5) and t["recipe"]["warmup_ratio"] == pytest.approx(0.1)
               for t in trials), [t["recipe"] for t in trials]


def _tune_space():
    from optuna.distributions import CategoricalDistribution, IntUniformDistribution, LogUniformDistribution

    return {"recipe.lr": LogUniformDistribution(1e-5, 1e-4), "recipe.epochs": IntUniformDistribution(2, 5),
            "recipe.warmup_ratio": CategoricalDistribution([0.0, 0.06, 0.1])}


def _proposals(sampler, n):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    proposed = []
    for k in range(n):
        trial = study.ask()
        proposed.append({name: trial._suggest(name, dist) for name, dist in _tune_space().items()})
        study.tell(trial, 0.5 + 0.01 * k)
    return proposed


def test_default_first_sampler_runs_the_default_then_what_the_base_would_have():
    """Trial 0 is the starting recipe; trial k + 1 is the wrapped sampler's trial k (so resumed sweeps line up)."""
    from optuna.samplers import TPESampler

    from hashee.runs.sampler import DefaultFirstSampler

    first = {"recipe.lr": "5e-5", "recipe.epochs": 5, "recipe.warmup_ratio": 0.1}
    wrapped = _proposals(DefaultFirstSampler(TPESampler(seed=0), first), 4)
    plain = _proposals(TPESampler(seed=0), 3)
    assert wrapped[0] == {"recipe.lr": pytest.approx(5e-5), "recipe.epochs": 5, "recipe.warmup_ratio": 0.1}
    assert isinstance(wrapped[0]["recipe.epochs"], int)
    assert wrapped[1:] == plain and wrapped[1] != wrapped[0]


def test_a_default_outside_the_search_space_is_refused():
    from optuna.samplers import TPESampler

    from hashee.core.errors import ConfigError
    from hashee.runs.sampler import DefaultFirstSampler

    sampler = DefaultFirstSampler(TPESampler(seed=0), {"recipe.lr": 2e-4, "recipe.epochs": 6, "recipe.warmup_ratio": 0.1})
    with pytest.raises(ConfigError, match=r"recipe.lr=0.0002 is outside its search space.*hydra.sweeper.params.recipe.lr"):
        _proposals(sampler, 1)


def test_the_tune_sweep_stops_with_one_line_when_the_default_is_outside_the_search_space(tmp_path):
    """bbc_headlines' recipe (lr 2e-4) is outside the shipped lr range: one line, before any training."""
    done = _tune(tmp_path, "task=bbc_headlines", "hydra.sweeper.n_trials=1")
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "outside its search space" in line]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not list((tmp_path / "tune").rglob("results.json"))
