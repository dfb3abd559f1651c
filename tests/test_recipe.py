"""Fine-tuning recipes: every task carries one, it feeds the trainer/optimizer/data keys, a run records what it
used (overrides named), recipe=tuned loads a tuned file or stops with one line, and the recipe nodes do not
change a run's identity beyond the values they feed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import compose_config
from hashee.core.errors import ConfigError
from hashee.runs.identity import config_fingerprint
from hashee.runs.recipe import RECIPE_KEYS, best_trial, check_recipe, describe, tuned_recipe_text, used_recipe

TASKS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "task").glob("*.yaml"))


@pytest.mark.parametrize("task", TASKS)
def test_every_task_config_carries_a_recipe_that_feeds_the_run(task):
    cfg = compose_config([f"task={task}"])
    recipe = cfg.task.recipe
    assert set(RECIPE_KEYS) <= set(recipe) and recipe["from"], f"{task}: recipe incomplete"
    used = used_recipe(cfg)
    assert (used["epochs"], used["batch_size"]) == (recipe.epochs, recipe.batch_size)
    assert (float(used["lr"]), float(used["warmup_ratio"])) == (float(recipe.lr), float(recipe.warmup_ratio))
    assert used["kind"] == "default" and used["overridden"] == [] and used["source"].startswith("task default")


def test_an_override_of_the_recipe_or_of_the_key_it_feeds_is_recorded():
    by_recipe = used_recipe(compose_config(["task=mrpc", "recipe.epochs=2"]))
    by_key = used_recipe(compose_config(["task=mrpc", "optim.lr=1e-4"]))
    assert by_recipe["epochs"] == 2 and by_recipe["overridden"] == ["epochs"]
    assert float(by_key["lr"]) == 1e-4 and by_key["overridden"] == ["lr"]
    assert "overridden: lr" in describe(by_key) and "5 epochs" in describe(by_key)


def test_recipe_nodes_count_in_the_fingerprint_only_through_the_values_they_feed():
    base = config_fingerprint(compose_config(["task=sst2"]))
    assert config_fingerprint(compose_config(["task=sst2", "task.recipe.from=elsewhere"])) == base
    assert config_fingerprint(compose_config(["task=sst2", "recipe.lr=1e-4"])) != base
    assert config_fingerprint(compose_config(["task=sst2", "recipe.epochs=3"])) == base  # sst2's own value


def test_recipe_tuned_without_a_tuned_file_stops_with_one_line():
    cfg = compose_config(["backbone=tiny", "recipe=tuned"])
    with pytest.raises(ConfigError, match=r"conf/recipes/tuned/tiny/rotten_tomatoes/full.yaml.*\+sweep=tune"):
        check_recipe(cfg, {})
    check_recipe(compose_config(["backbone=tiny"]), {})  # the default recipe never stops a run


def test_recipe_tuned_loads_the_tuned_file_for_backbone_task_and_method(tmp_path):
    folder = tmp_path / "recipes" / "tuned" / "tiny" / "rotten_tomatoes"
    folder.mkdir(parents=True)
    (folder / "pabee.yaml").write_text(yaml.safe_dump(
        {"epochs": 4, "lr": 3e-5, "batch_size": 16, "warmup_ratio": 0.0, "kind": "tuned", "source": "tuned: test"}))
    search = f"hydra.searchpath=[file://{tmp_path}]"
    cfg = compose_config(["backbone=tiny", "method=pabee", "recipe=tuned", search])
    check_recipe(cfg, {})
    assert (cfg.trainer.max_epochs, float(cfg.optim.lr), cfg.data.batch_size, float(cfg.optim.warmup_ratio)) == (
        4, 3e-5, 16, 0.0)
    assert used_recipe(cfg)["source"] == "tuned: test" and used_recipe(cfg)["overridden"] == []
    with pytest.raises(ConfigError):  # another method has no tuned file
        check_recipe(compose_config(["backbone=tiny", "method=full", "recipe=tuned", search]), {})


def test_the_best_trial_is_the_best_on_validation_and_ties_follow_the_sweepers_record(tmp_path):
    trials = [{"val_primary": 0.7, "primary": 0.9, "recipe": {"lr": 1e-5, "epochs": 2}},
              {"val_primary": 0.8, "primary": 0.1, "recipe": {"lr": 2e-5, "epochs": 3}},
              {"val_primary": 0.8, "primary": 0.2, "recipe": {"lr": 3e-5, "epochs": 4}}]
    record = tmp_path / "optimization_results.yaml"
    assert best_trial(trials, record) is trials[1]  # no record: the first of the best on validation
    record.write_text(yaml.safe_dump({"best_params": {"recipe.lr": 3e-5, "recipe.epochs": 4}, "best_value": 0.8}))
    assert best_trial(trials, record) is trials[2]


def test_a_tuned_recipe_says_when_its_study_ran_not_when_it_was_rewritten():
    best = {"recipe": {"lr": 3e-5, "epochs": 4, "batch_size": 16, "warmup_ratio": 0.0}, "config": {"data": {}},
            "seed": 0, "val_primary": 0.8, "primary_metric": "f1"}
    parts = {"backbone": "tiny", "task": "mrpc", "method": "full"}
    kept = yaml.safe_load(tuned_recipe_text(best, 3, parts, "hashee-bench -m +sweep=tune", date="2026-01-02"))
    assert kept["source"].endswith("seed 0, 2026-01-02") and kept["epochs"] == 4
    today = yaml.safe_load(tuned_recipe_text(best, 3, parts, "hashee-bench -m +sweep=tune"))
    assert today["source"] != kept["source"] and today["lr"] == 3e-5


COMMITTED_TUNED = sorted((Path(__file__).parents[1] / "conf" / "recipes" / "tuned").glob("*/*/*.yaml"))


@pytest.mark.parametrize("path", COMMITTED_TUNED, ids=lambda p: "/".join(p.parts[-3:]))
def test_every_committed_tuned_recipe_loads_and_says_how_it_was_found(path):
    backbone, task, method = path.parts[-3], path.parts[-2], path.stem
    header = path.read_text().splitlines()[:3]
    assert header[1].startswith("# Found by: hashee-bench -m ") and "+sweep=tune" in header[1], header
    cfg = compose_config([f"backbone={backbone}", f"task={task}", f"method={method}", "recipe=tuned"])
    check_recipe(cfg, {})
    recipe = yaml.safe_load(path.read_text())
    assert used_recipe(cfg)["kind"] == "tuned" and cfg.trainer.max_epochs == recipe["epochs"]
    assert float(cfg.optim.lr) == pytest.approx(float(recipe["lr"]))
