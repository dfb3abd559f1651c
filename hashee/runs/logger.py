"""The experiment logger of a run, instantiated from the ``logger`` config group (its ``_target_``, W&B by
default), and what a run logs to it at the end. A logger failure never fails a run."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import hydra
from omegaconf import DictConfig, OmegaConf

from hashee.methods.registry import contract_of
from hashee.runs.identity import run_tags

log = logging.getLogger(__name__)


def make_logger(cfg: DictConfig, run_dir: Path, resolved: Mapping[str, Any]) -> Any | None:
    """The logger of ``cfg.logger`` (``_target_``; by default a WandbLogger, offline, its runs under ``run_dir``),
    or None (``logger=none``, or ``logger.mode=disabled``).

    The run adds what only it knows: the tags of :func:`~hashee.runs.identity.run_tags` before the configured
    ones, ``save_dir``, ``offline`` (from ``mode``), the resolved config and the method as ``job_type``.
    A failure (not installed, no network in online mode, bad entity) is reported in one warning line and
    the run continues without a logger.
    """
    settings = cfg.logger
    if not settings.get("_target_") or settings.get("mode", "disabled") == "disabled":
        return None
    try:
        os.environ.setdefault("WANDB_SILENT", "true")
        node = OmegaConf.to_container(settings, resolve=True)
        mode, tags = node.pop("mode"), [str(t) for t in node.pop("tags", None) or []]
        factory = hydra.utils.instantiate(node, _partial_=True)
        logger = factory(tags=run_tags(cfg, contract_of(str(cfg.method.name))) + tags, save_dir=str(run_dir), offline=mode == "offline",
                         config=dict(resolved), job_type=str(cfg.method.name))
        logger.experiment  # start the run now, so that a failure shows here and not mid-training
        return logger
    except Exception as exc:  # noqa: BLE001 - W&B must never fail a run
        log.warning("W&B logging disabled for this run: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Flatten nested dicts of scalars into ``prefix/key`` entries (lists and strings skipped)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(f"{prefix}/{key}" if prefix else str(key), inner))
        return out
    return {prefix: value} if isinstance(value, (int, float)) and not isinstance(value, bool) else {}


def exit_head_scalars(results: Mapping[str, Any]) -> dict[str, Any]:
    """Per-exit diagnostics as W&B scalars: ``exit/layer<i>/{val,test}/<metric>``, ``p_value``, ``degenerate``."""
    diagnostics = results.get("method_info", {}).get("exit_diagnostics") or {}
    scalars: dict[str, Any] = {}
    for head in diagnostics.get("heads", []):
        prefix = f"exit/layer{head['layer']}"
        scalars.update(flatten(prefix, {"val": head["val"], "test": head["test"], "p_value": head["p_value_vs_trivial"]}))
        scalars[f"{prefix}/degenerate"] = int(head["degenerate"])
    return scalars


def log_summary(logger: Any | None, results: Mapping[str, Any]) -> None:
    """Put the test metrics, validation metrics and cost block into the W&B run summary."""
    if logger is None:
        return
    try:
        scalars = {**flatten("test", results.get("metrics", {})), **flatten("val_final", results.get("val_metrics", {})),
                   **flatten("cost", results.get("cost", {})), **exit_head_scalars(results)}
        logger.experiment.summary.update(scalars)
        logger.log_metrics(scalars)
        extra = results.get("method_info", {})
        if extra:
            logger.experiment.summary.update({"method_info": extra})
        log_hash_tables(logger, extra.get("prepare", {}).get("hash"))
        logger.experiment.finish()
    except Exception as exc:  # noqa: BLE001 - W&B must never fail a run
        log.warning("W&B summary not logged: %s", exc)


def log_hash_tables(logger: Any, described: Mapping[str, Any] | None) -> None:
    """HashEE: bucket sizes and the training exit-layer histogram as W&B tables and bar charts."""
    if not described:
        return
    import wandb

    histogram = described.get("train_exit_histogram") or []
    table = wandb.Table(columns=["exit_layer", "train_tokens"], data=[[i + 1, c] for i, c in enumerate(histogram)])
    buckets = wandb.Table(columns=["bucket", "exit_layer", "types", "train_token_mass"],
                          data=[[k, layer, types, mass] for k, (layer, types, mass) in enumerate(zip(
                              described.get("layer_per_bucket") or [], described.get("bucket_types") or [],
                              described.get("bucket_token_mass") or []))])
    logger.experiment.log({
        "hash/exit_histogram": wandb.plot.bar(table, "exit_layer", "train_tokens", title="train tokens per exit layer"),
        "hash/buckets": buckets,
    })
