"""The classification run (``experiment=default`` on a classification or regression task):
config -> task -> data -> method -> train (select on val) -> calibrate (val) -> test -> results."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from hashee.core.backbone import load_backbone
from hashee.core.distributed import is_rank_zero
from hashee.core.stats import Outputs, metric_interval
from hashee.data.classification import TaskDataModule
from hashee.experiments.diagnostics import exit_diagnostics
from hashee.experiments.evaluation import cost_block, evaluate, save_predictions
from hashee.experiments.steps import build_data, cache_dir, finish_run, instantiate_method, start_run
from hashee.experiments.training import train_or_reuse
from hashee.methods.base import ExitModule
from hashee.runs.logger import make_logger
from hashee.tasks.metrics import compute_metrics, predictions
from hashee.tasks.spec import TaskSpec

log = logging.getLogger(__name__)


def run_classification(cfg: DictConfig, run_dir: Path, fingerprint: str | None = None) -> dict[str, Any]:
    """Run one method on a classification or regression task end to end and write ``results.json`` into ``run_dir``."""
    results = start_run(cfg, run_dir, fingerprint)
    spec = TaskSpec.from_config(cfg.task)
    backbone = load_backbone(cfg.backbone)
    datamodule = build_data(cfg, spec, backbone.tokenizer, backbone.source)
    module: ExitModule = instantiate_method(cfg.method, spec=spec, backbone=backbone, optim=cfg.optim)
    pooling = module.encoder.pooling  # the backbone's, unless the method reads its own (hashee.pooling)
    method_info = {"pooling": pooling, "prepare": module.prepare(datamodule, cache_dir(cfg))}
    log.info("heads read the %s pooled vector (backbone.pooling=%s)", pooling, cfg.backbone.get("pooling", "auto"))
    logger = make_logger(cfg, run_dir, results["config"])

    results["train"] = train_or_reuse(cfg, module, datamodule, run_dir, logger)
    if not is_rank_zero():  # DDP: the other ranks only train; rank 0 evaluates and writes results.json
        return results
    results["train"].update(examples=len(datamodule.encoded["train"]), val_examples=len(datamodule.encoded["val"]))
    module.eval()
    target = cfg.get("target_speedup")
    method_info["operating_point"] = module.calibrate(datamodule, None if target is None else float(target))
    results.update(reported_results(cfg, module, spec, datamodule, method_info, run_dir))
    finish_run(run_dir, results, logger)
    return results


def reported_results(cfg: DictConfig, module: ExitModule, spec: TaskSpec, datamodule: TaskDataModule,
                     method_info: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Metrics on validation and on the reported split at the chosen operating point, curves, per-exit
    diagnostics, the predictions file and the cost block (what ``results.json`` adds after training)."""
    val_batches = datamodule.eval_batches("val")
    val = evaluate(module, val_batches)
    test_batches = datamodule.eval_batches("test")
    test = evaluate(module, test_batches)
    metrics = compute_metrics(spec, test["logits"], test["labels"])
    val_metrics = compute_metrics(spec, val["logits"], val["labels"])
    curve = module.evaluation_curve(test_batches)
    if curve is not None:
        method_info["test_curve"] = curve
    method_info["exit_diagnostics"] = exit_diagnostics(module, spec, datamodule.labels("train"),
                                                       {"val": (val_batches, val), "test": (test_batches, test)})
    return dict(
        reported_split=spec.test_split_name,
        metrics=metrics,
        primary_metric=spec.primary_metric,
        primary=metrics[spec.primary_metric],
        primary_ci95=metric_interval(spec.primary_metric, Outputs(test["labels"].numpy(),
                                                                   predictions(spec, test["logits"]).numpy())),
        val_metrics=val_metrics,
        val_primary=val_metrics[spec.primary_metric],
        predictions_file=save_predictions(run_dir, spec, test),
        val_flops_speedup=val["flops_full"] / val["flops"],
        cost=cost_block(module, test, test_batches, cfg, datamodule),
        method_info=method_info,
    )
