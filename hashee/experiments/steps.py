"""The steps every experiment shares: where caches live, the classification data, the method, and the start
and end of a run's ``results.json``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import hydra
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from hashee.core.allocator import keep_freed_memory
from hashee.core.errors import HasheeError
from hashee.data.classification import TaskDataModule
from hashee.methods.registry import contract_for
from hashee.runs.identity import code_version, config_fingerprint
from hashee.runs.logger import log_summary
from hashee.runs.recipe import describe, used_recipe
from hashee.runs.results import RunStatus, package_versions, write_results
from hashee.runs.summary import print_summary
from hashee.tasks.spec import TaskSpec

log = logging.getLogger(__name__)


def cache_dir(cfg: DictConfig) -> str:
    return str(Path(str(cfg.data.cache_dir)).expanduser())


def build_data(cfg: DictConfig, spec: TaskSpec, tokenizer: Any, tokenizer_name: str) -> TaskDataModule:
    """The shared data module, set up (loaded + tokenized)."""
    datamodule = TaskDataModule(spec, cfg.data, tokenizer, tokenizer_name, batch_size=int(cfg.data.batch_size),
                                eval_batch_size=int(cfg.data.eval_batch_size), max_length=int(cfg.data.max_length),
                                seed=int(cfg.seed), cache_dir=str(Path(cache_dir(cfg)) / "tokenized"))
    datamodule.setup()
    return datamodule


def instantiate_method(method_cfg: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` of a method, re-raising our one-line errors unwrapped.

    ``seq2seq_target`` (the class a method uses on generation tasks) is not an argument."""
    method = OmegaConf.to_container(method_cfg, resolve=True) if isinstance(method_cfg, DictConfig) else dict(method_cfg)
    method.pop("seq2seq_target", None)
    # config nodes (optim, generation) resolved here: detached from the root, their interpolations (the recipe) would not
    kwargs = {key: OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
              for key, value in kwargs.items()}
    try:
        return hydra.utils.instantiate(method, _recursive_=False, **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, HasheeError):
            raise exc.__cause__ from None
        raise


def start_run(cfg: DictConfig, run_dir: Path, fingerprint: str | None, experiment: str | None = None) -> dict[str, Any]:
    """Threads and seeds set, and ``results.json`` started (``status: running``) with the run's identity.

    ``experiment``: a run that is not a method's (the difficulty experiments) names itself, as its method too."""
    if cfg.eval.threads:
        torch.set_num_threads(int(cfg.eval.threads))
    if cfg.eval.get("keep_freed_memory", True):
        keep_freed_memory()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    results: dict[str, Any] = {"task": cfg.task.name, "method": experiment or cfg.method.name}
    if experiment:
        results["experiment"] = experiment
    else:  # what the reports read about the method (label, operating point, role), from the method itself
        label_type = str(cfg.task.get("label_type", "classification"))
        results["method_contract"] = contract_for(cfg.method, label_type).record()
    results.update(seed=int(cfg.seed), run_dir=str(run_dir), config_fingerprint=fingerprint or config_fingerprint(cfg),
                   config=OmegaConf.to_container(cfg, resolve=True), versions=package_versions(), code=code_version(),
                   recipe=used_recipe(cfg))
    log.info("recipe: %s", describe(results["recipe"]))
    write_results(run_dir, results, status=RunStatus.RUNNING)
    return results


def finish_run(run_dir: Path, results: Mapping[str, Any], logger: Any | None,
               log: Callable[[Any, Mapping[str, Any]], None] = log_summary,
               show: Callable[[Mapping[str, Any]], None] = print_summary) -> None:
    """``results.json`` complete, the run's summary in its logger (``log``) and its table printed (``show``)."""
    write_results(run_dir, results, status=RunStatus.COMPLETE)
    log(logger, results)
    show(results)
