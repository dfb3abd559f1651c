"""One dispatcher for every experiment: ``run_experiment`` picks the run a config asks for.

``experiment=default`` runs the task's pipeline (:data:`PIPELINES`, by the task's kind:
:func:`hashee.tasks.kinds.task_kind`); any other ``experiment.name`` is one of :data:`EXPERIMENTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

from hashee.core.errors import ConfigError
from hashee.experiments.classification import run_classification
from hashee.experiments.difficulty.human import run_difficulty_human
from hashee.experiments.difficulty.model import run_difficulty_model
from hashee.experiments.generation import run_generation
from hashee.tasks.kinds import task_kind


@dataclass(frozen=True)
class Experiment:
    """A kind of run: the function that runs it, and whether it shards its batches over DDP ranks."""

    run: Callable[[DictConfig, Path, str | None], dict[str, Any]]
    shards_batches: bool = True  # under DDP every rank trains on its own share of every epoch's batches
    what: str = "this experiment"  # how a refusal names it


PIPELINES = {  # experiment=default, by task kind
    "classification": Experiment(run_classification, what="classification tasks"),
    "generation": Experiment(run_generation, shards_batches=False, what="generation tasks"),
}
EXPERIMENTS = {
    "difficulty_model": Experiment(run_difficulty_model, what="experiment=difficulty_model"),
    "difficulty_human": Experiment(run_difficulty_human, what="experiment=difficulty_human"),
}


def experiment_for(cfg: DictConfig) -> Experiment:
    """The experiment a config asks for (a one-line ConfigError for an unknown ``experiment.name``)."""
    name = str(cfg.experiment.name) if cfg.get("experiment") else "default"
    if name == "default":
        return PIPELINES[task_kind(cfg.task)]
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment.name {name!r} (known: default, {', '.join(EXPERIMENTS)})")
    return EXPERIMENTS[name]


def check_ddp_support(cfg: DictConfig) -> None:
    """Refuse DDP for an experiment whose batches are not sharded over ranks (the generation pipeline)."""
    strategy = str(cfg.get("trainer", {}).get("strategy", "auto"))
    experiment = experiment_for(cfg) if strategy.startswith("ddp") else None
    if experiment is not None and not experiment.shards_batches:
        raise ConfigError(f"trainer.strategy={strategy} is not supported for {experiment.what} (their batches are "
                          "not sharded over ranks); use trainer=cpu or trainer=gpu")


def run_experiment(cfg: DictConfig, run_dir: Path, fingerprint: str | None = None) -> dict[str, Any]:
    """Run one configured experiment end to end and write ``results.json`` into ``run_dir``."""
    return experiment_for(cfg).run(cfg, Path(run_dir), fingerprint)
