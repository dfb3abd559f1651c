"""W&B logger creation (never fatal) and the end-of-run summary table."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

log = logging.getLogger(__name__)
LOG_WIDTH = 200  # characters per line when stdout is not a terminal


def make_logger(cfg: DictConfig, run_dir: Path, resolved: Mapping[str, Any]) -> Any | None:
    """A WandbLogger as configured (offline by default, runs saved under ``run_dir``), or None.

    A W&B failure (not installed, no network in online mode, bad entity) is reported in one
    warning line and the run continues without W&B.
    """
    settings = cfg.logger
    if settings.get("mode", "disabled") == "disabled":
        return None
    try:
        from pytorch_lightning.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")
        logger = WandbLogger(
            project=settings.get("project", "hashee-bench"), entity=settings.get("entity"),
            group=settings.get("group"), tags=run_tags(cfg) + [str(t) for t in settings.get("tags") or []],
            name=settings.get("run_name"), save_dir=str(run_dir), offline=settings.get("mode") == "offline",
            config=dict(resolved), job_type=str(cfg.method.name),
        )
        logger.experiment  # start the run now, so that a failure shows here and not mid-training
        return logger
    except Exception as exc:  # noqa: BLE001 - W&B must never fail a run
        log.warning("W&B logging disabled for this run: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None


def run_tags(cfg: DictConfig) -> list[str]:
    """Tags that let W&B compare runs: task, method, hash (HashEE), target speed-up, seed."""
    tags = [f"task:{cfg.task.name}", f"method:{cfg.method.name}", f"seed:{cfg.seed}"]
    target = cfg.get("target_speedup")
    if cfg.method.name == "hashee":
        tags.append(f"hash:{cfg.hash.name}")
        target = cfg.hashee.get("target_speedup")
    if target is not None:
        tags.append(f"speedup:{target}")
    return tags


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


def log_console() -> Console:
    """A console for summaries: a wide one when stdout is a file or a CI log, so no row wraps."""
    return Console() if sys.stdout.isatty() else Console(width=LOG_WIDTH, soft_wrap=True)


def print_summary(results: Mapping[str, Any], console: Console | None = None) -> None:
    """A short table: task, method, reported metrics, speed-ups, where results.json is."""
    console = console or log_console()
    cost = results.get("cost", {})
    table = Table(title=f"{results['task']} / {results['method']} (seed {results['seed']})", show_header=True)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in results.get("metrics", {}).items():
        table.add_row(f"{results.get('reported_split', 'test')} {key}", f"{value:.4f}")
    for key, value in results.get("val_metrics", {}).items():
        table.add_row(f"val {key}", f"{value:.4f}")
    for key in ("flops_speedup", "measured_speedup", "efficiency", "time_s", "time_full_s"):
        if key in cost:
            table.add_row(key, f"{cost[key]:.3f}")
    console.print(table)
    console.print(f"results: {Path(results['run_dir']) / 'results.json'}")
