"""The fine-tuning recipe of a run (epochs, learning rate, batch size, warmup): what ran, where it came from,
and the tuned recipes that ``+sweep=tune`` writes.

Every task config carries its published recipe (``task.recipe``). The ``recipe`` config group selects it
(``recipe=default``) or the recipe tuned on the validation split (``recipe=tuned``: the file
``conf/recipes/tuned/<backbone>/<task>/<method>.yaml``, loaded by the root config's defaults list). The
recipe feeds the keys of :data:`RECIPE_KEYS`; :func:`used_recipe` reads those keys, so what a run records
is what it trained with, and an override of either the recipe or the key itself is named.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path
from typing import Any, Mapping

import yaml
from omegaconf import DictConfig, OmegaConf

from hashee.core.errors import ConfigError
from hashee.runs.results import is_complete

RECIPE_KEYS = {"epochs": "trainer.max_epochs", "lr": "optim.lr", "batch_size": "data.batch_size",
               "warmup_ratio": "optim.warmup_ratio"}
MISSING_TUNED = "tuned-missing"  # conf/recipe/tuned.yaml's source until a tuned file replaces it
TUNED_PARTS = ("backbone", "task", "method")  # a tuned recipe's file: <backbone>/<task>/<method>.yaml


def same_value(a: Any, b: Any) -> bool:
    """Equal as numbers (to 1e-9 relative), else equal: ``5e-5`` written as text or float is the same lr."""
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return a == b


def used_recipe(cfg: DictConfig) -> dict[str, Any]:
    """The recipe a run trains with (read from the keys it feeds), its source, and which values differ from it."""
    used = {key: OmegaConf.select(cfg, path) for key, path in RECIPE_KEYS.items()}
    recipe = cfg.get("recipe") or {}
    kind = str(recipe.get("kind", "default"))
    reference = cfg.task.get("recipe") if kind == "default" else recipe  # the recipe as its source states it
    reference = reference or {}
    overridden = [key for key in RECIPE_KEYS if key in reference and not same_value(reference[key], used[key])]
    return {**used, "kind": kind, "source": str(recipe.get("source", "none (no recipe node)")), "overridden": overridden}


def describe(recipe: Mapping[str, Any]) -> str:
    """``5 epochs, lr 5e-05, batch 32, warmup 0.1 (task default: ...; overridden: epochs)``."""
    text = (f"{recipe['epochs']} epochs, lr {float(recipe['lr']):g}, batch {recipe['batch_size']}, "
            f"warmup {float(recipe['warmup_ratio']):g} ({recipe['source']}")
    return text + (f"; overridden: {', '.join(recipe['overridden'])})" if recipe.get("overridden") else ")")


def check_recipe(cfg: DictConfig, choices: Mapping[str, Any]) -> None:
    """One line for ``recipe=tuned`` without a tuned recipe for this backbone, task and method."""
    recipe = cfg.get("recipe") or {}
    if str(recipe.get("kind")) == "tuned" and str(recipe.get("source")) == MISSING_TUNED:
        parts = {part: choices.get(part) or cfg[part].name for part in TUNED_PARTS}
        where = "/".join(str(parts[p]) for p in TUNED_PARTS)
        args = " ".join(f"{p}={parts[p]}" for p in TUNED_PARTS)
        raise ConfigError(f"recipe=tuned: no tuned recipe conf/recipes/tuned/{where}.yaml; find one on the "
                          f"validation split with `hashee-bench -m +sweep=tune {args}` (or use recipe=default)")


def tuned_dir(recipe_dir: str | None = None) -> Path:
    """Where tuned recipes live: ``recipe_dir``, else ``recipes/tuned`` of the installed config package."""
    if recipe_dir:
        return Path(recipe_dir).expanduser()
    spec = importlib.util.find_spec("hashee_conf")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the hashee_conf config package is not installed; set tune.recipe_dir")
    return Path(list(spec.submodule_search_locations)[0]) / "recipes" / "tuned"


def complete_trials(sweep_dir: Path) -> list[dict[str, Any]]:
    """The complete runs of a sweep directory that have a validation metric, by run directory."""
    trials = []
    for path in sorted(Path(sweep_dir).rglob("results.json")):
        results = json.loads(path.read_text())
        if is_complete(results) and results.get("val_primary") is not None:
            trials.append(results)
    return trials


def best_trial(trials: list[dict[str, Any]], optuna_record: Path) -> dict[str, Any]:
    """The trial with the best validation metric; among equals, the one the sweeper's record names as best."""
    top = max(float(t["val_primary"]) for t in trials)
    tied = [t for t in trials if math.isclose(float(t["val_primary"]), top)]
    named = yaml.safe_load(optuna_record.read_text()).get("best_params", {}) if optuna_record.exists() else {}
    wanted = {key.split(".", 1)[1]: value for key, value in named.items() if key.startswith("recipe.")}
    matching = [t for t in tied if all(same_value(t["recipe"].get(k), v) for k, v in wanted.items())]
    return (matching or tied)[0]


def tuned_recipe_text(best: Mapping[str, Any], trials: int, parts: Mapping[str, str], command: str,
                      date: str | None = None) -> str:
    """The YAML of a tuned recipe: the best trial's recipe, with a header saying how it was found (``date``:
    when the study ran, default today)."""
    recipe, config = best["recipe"], best["config"]
    metric = best.get("primary_metric", "primary metric")
    found = (f"tuned on validation by +sweep=tune: best of {trials} trials, val {metric} {best['val_primary']:.4f}, "
             f"train_limit {config['data'].get('train_limit')}, seed {best['seed']}, {date or time.strftime('%Y-%m-%d')}")
    values = {key: recipe[key] for key in RECIPE_KEYS}
    header = (f"# Tuned recipe for backbone={parts['backbone']} task={parts['task']} method={parts['method']} "
              f"(select it with recipe=tuned).\n# Found by: {command}\n# {found}.\n"
              f"# Objective: the validation primary metric; the reported split never reached the sweeper.\n")
    return header + yaml.safe_dump({**values, "kind": "tuned", "source": found}, sort_keys=False)


def write_tuned_recipe(sweep_dir: Path, choices: Mapping[str, Any], command: str,
                       recipe_dir: str | None = None, date: str | None = None) -> Path | None:
    """Write the best complete trial's recipe to ``<tuned dir>/<backbone>/<task>/<method>.yaml`` (None: no trial).

    ``date`` is when the study ran (default today: the sweep's end writes it); a file rewritten later from
    committed trials keeps the study's date, so the recipe's ``source`` (recorded by every run) does not change.
    """
    trials = complete_trials(sweep_dir)
    if not trials:
        return None
    best = best_trial(trials, Path(sweep_dir) / "optimization_results.yaml")
    parts = {part: str(choices.get(part) or best["config"][part]["name"]) for part in TUNED_PARTS}
    path = tuned_dir(recipe_dir).joinpath(*(parts[p] for p in TUNED_PARTS)).with_suffix(".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tuned_recipe_text(best, len(trials), parts, command, date))
    return path
