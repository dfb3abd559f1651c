"""Training: the method's stages, each fit with Lightning callbacks instantiated from the ``callbacks``
config group (the checkpoint kept is the best on the validation split); a model whose training ignores
the target speed-up is trained once and reused by the other targets of its configuration."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, ProgressBar

from hashee.core.cache import DamagedCache, load_checked, torch_load, torch_save
from hashee.data.classification import TaskDataModule
from hashee.experiments.steps import cache_dir
from hashee.methods.base import ExitModule
from hashee.runs.identity import training_fingerprint
from hashee.runs.lock import waiting_lock
from hashee.runs.results import Interrupted

log = logging.getLogger(__name__)
logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)  # no banner/tips
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def make_callbacks(cfg: DictConfig, run_dir: Path, stage: str) -> list[Callback]:
    """The callbacks of ``cfg.callbacks`` (every entry with a ``_target_``), for one training stage.

    A checkpoint callback whose ``dirpath`` / ``filename`` are null gets ``<run dir>/checkpoints`` and
    ``best-<stage>``; progress bars are left out when ``progress_bar`` is false."""
    callbacks = []
    for node in (cfg.get("callbacks") or {}).values():
        if not node or not node.get("_target_"):
            continue
        kind = hydra.utils.get_class(node._target_)
        if issubclass(kind, ProgressBar) and not cfg.progress_bar:
            continue
        runtime = {}
        if issubclass(kind, ModelCheckpoint):
            places = {"dirpath": str(run_dir / "checkpoints"), "filename": f"best-{stage}"}
            runtime = {key: value for key, value in places.items() if node.get(key) is None}
        callbacks.append(hydra.utils.instantiate(node, **runtime))
    return callbacks


def fit_stage(cfg: DictConfig, module: ExitModule, datamodule: TaskDataModule, run_dir: Path, logger: Any,
              stage: str) -> dict[str, Any]:
    """Fit one training stage; load the checkpoint its checkpoint callback kept (the best on validation)."""
    callbacks = make_callbacks(cfg, run_dir, stage)
    checkpoint = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=logger or False,
                                                  default_root_dir=str(run_dir), enable_progress_bar=bool(cfg.progress_bar))
    module.train()  # from_pretrained returns eval mode, and Lightning keeps the mode it finds
    start = time.perf_counter()
    fit_or_raise(trainer, module, datamodule)
    seconds = time.perf_counter() - start
    best = checkpoint.best_model_path if checkpoint is not None else ""
    if best:
        module.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    score = checkpoint.best_model_score if checkpoint is not None else None
    return {"stage": stage, "train_time_s": seconds, "epochs": trainer.current_epoch, "steps": trainer.global_step,
            "best_checkpoint": best or None, "best_val_primary": None if score is None else float(score)}


def fit_or_raise(trainer: pl.Trainer, module: ExitModule, datamodule: TaskDataModule) -> None:
    """``trainer.fit``, raising :class:`Interrupted` when a signal stopped it.

    Lightning catches SIGINT (KeyboardInterrupt) and SIGTERM in ``fit``, shuts down gracefully, marks
    the trainer interrupted, then exits (or, in some versions, returns): a half-trained model must
    never be evaluated as complete, nor cached for other targets."""
    try:
        trainer.fit(module, datamodule=datamodule)
    except SystemExit:
        if not trainer.interrupted:
            raise
        raise Interrupted(signal.SIGTERM if trainer.received_sigterm else signal.SIGINT) from None
    if trainer.interrupted:
        raise Interrupted(signal.SIGTERM if trainer.received_sigterm else signal.SIGINT)


def train(cfg: DictConfig, module: ExitModule, datamodule: TaskDataModule, run_dir: Path, logger: Any) -> dict[str, Any]:
    """Run the method's training stages in order (most methods have one; DeeBERT has two)."""
    stages = []
    for stage in module.training_stages():
        module.stage = stage
        stages.append(fit_stage(cfg, module, datamodule, run_dir, logger, stage))
    return {"stages": stages, "train_time_s": sum(s["train_time_s"] for s in stages)}


def trained_model_file(cfg: DictConfig) -> Path:
    """Where a model whose training ignores the target speed-up is kept for the other targets of a sweep.

    Keyed by the resolved config without the keys that only matter after training (target
    speed-up, evaluation, logging), so one trained model serves its whole curve, and by the code
    (:func:`~hashee.runs.identity.training_fingerprint`).
    """
    digest = training_fingerprint(cfg)
    return Path(cache_dir(cfg)) / "trained" / f"{cfg.task.name}-{cfg.method.name}-{digest}.pt"


def train_or_reuse(cfg: DictConfig, module: ExitModule, datamodule: TaskDataModule, run_dir: Path,
                   logger: Any) -> dict[str, Any]:
    """Train, or load the weights another target of the same configuration already trained.

    Only for methods whose training does not depend on the target (``module.training_uses_target``
    is False) and when ``reuse_training`` is on; HashEE's hash, hence its training, depends on it.
    """
    if module.training_uses_target or not cfg.get("reuse_training", True):
        return train(cfg, module, datamodule, run_dir, logger)
    path = trained_model_file(cfg)
    # one training per key: a second sweep process on the same key waits, then reuses (DDP ranks train together)
    lock = contextlib.nullcontext() if is_multi_process(cfg) else waiting_lock(path.with_suffix(".lock"))
    with lock:
        saved = load_checked(path, lambda p: load_trained_model(p, module))  # a damaged file is set aside
        if saved is not None:
            log.info("reusing the model trained for another target speed-up: %s", path)
            return {**saved, "reused_from": str(path)}
        info = train(cfg, module, datamodule, run_dir, logger)
        torch_save({"state_dict": module.state_dict(), "train_json": json.dumps(info)}, path)  # atomic
        return info


def is_multi_process(cfg: DictConfig) -> bool:
    """Whether the run trains on several processes (DDP): its ranks must not wait for each other's lock."""
    trainer = cfg.get("trainer") or {}
    return "ddp" in str(trainer.get("strategy", "")) or int(trainer.get("num_nodes", 1) or 1) > 1


def load_trained_model(path: Path, module: ExitModule) -> dict[str, Any]:
    """Load a cached trained model (tensors and plain data only) into ``module``; return its training info.

    Raises :class:`DamagedCache` before touching ``module`` if the file is not one or its weights do not fit."""
    saved = torch_load(path)
    if not isinstance(saved, dict) or not isinstance(saved.get("train_json"), str):
        raise DamagedCache("not a trained-model file (no train_json)")
    info = json.loads(saved["train_json"])
    state = saved.get("state_dict")
    problem = state_dict_mismatch(module, state)
    if problem:
        raise DamagedCache(problem)
    module.load_state_dict(state)
    return info


def state_dict_mismatch(module: torch.nn.Module, state: Any) -> str | None:
    """Why ``state`` cannot be loaded into ``module`` (keys, shapes), or None if it fits."""
    if not isinstance(state, dict):
        return "no state_dict"
    expected = module.state_dict()
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    reshaped = [k for k in set(expected) & set(state) if isinstance(expected[k], torch.Tensor)
                and (not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape)]
    if missing or unexpected or reshaped:
        return (f"weights do not fit the model: {len(missing)} missing, {len(unexpected)} unexpected, "
                f"{len(reshaped)} of another shape")
    return None
