"""Evaluating a trained method on a split: per-example outputs and FLOPs, the per-example predictions file,
and the cost block of the reported split (FLOPs and wall-clock speed-ups, docs/methods.md section 3)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from omegaconf import DictConfig

from hashee.core.allocator import allocator_setting
from hashee.core.cost import time_inference
from hashee.data.classification import TaskDataModule
from hashee.methods.base import ExitModule, example_index
from hashee.runs.results import PREDICTIONS_FILE
from hashee.tasks.metrics import predictions
from hashee.tasks.spec import TaskSpec

log = logging.getLogger(__name__)


def evaluate(module: ExitModule, batches: list[Mapping[str, torch.Tensor]]) -> dict[str, Any]:
    """One pass over ``batches``: per example its logits, label, position in the split, FLOPs (method and
    full model, real lengths) and exit layer; ``flops`` / ``flops_full`` are the split's totals."""
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("logits", "labels", "index", "example_flops",
                                                              "example_flops_full", "exit_layer")}
    with torch.inference_mode():
        for batch in batches:
            out = module.predict_outputs(batch)
            parts["logits"].append(out["logits"].float().cpu())
            parts["labels"].append(batch["labels"].cpu())
            parts["index"].append(example_index(batch, parts["index"]))
            parts["example_flops"].append(out["flops"].double().cpu())
            parts["example_flops_full"].append(module.full_flops(batch).double().cpu())
            parts["exit_layer"].append(out["exit_layer"].float().cpu())
    result: dict[str, Any] = {k: torch.cat(v) for k, v in parts.items()}
    result.update(flops=float(result["example_flops"].sum()), flops_full=float(result["example_flops_full"].sum()))
    return result


def save_predictions(run_dir: Path, spec: TaskSpec, evaluated: Mapping[str, Any]) -> str:
    """Per-example outputs on the reported split (``predictions.npz``), for paired comparisons after the fact.

    Arrays, in one order: ``index`` (position in the split), ``label``, ``prediction``, ``logits``,
    ``flops``, ``flops_full`` and ``exit_layer`` (HashEE: the mean exit layer of the real tokens)."""
    path = Path(run_dir) / PREDICTIONS_FILE
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, index=evaluated["index"].numpy(), label=evaluated["labels"].numpy(),
                        prediction=predictions(spec, evaluated["logits"]).numpy(), logits=evaluated["logits"].numpy(),
                        flops=evaluated["example_flops"].numpy(), flops_full=evaluated["example_flops_full"].numpy(),
                        exit_layer=evaluated["exit_layer"].numpy())
    os.replace(tmp, path)
    return PREDICTIONS_FILE


NOISE_TOLERANCE = 0.05  # a run whose full-model-against-itself speed-up is off 1 by more than this is flagged


def measure_times(module: ExitModule, batches: list[Mapping[str, torch.Tensor]], warmup: int,
                  repeats: int) -> dict[str, Any]:
    """Wall-clock of the method and of the full model over the same batches, same process and threads.

    Each of ``repeats`` rounds times the full model, the method, then the full model again, so a slow
    phase of the machine hits both alike; the fastest pass of each is kept. The two halves of the
    full model's passes, timed against each other, are the noise check: on a quiet machine their
    ratio is 1, and a run whose ratio is off by more than :data:`NOISE_TOLERANCE` is flagged.
    """
    method, full_before, full_after = [], [], []
    for _ in range(max(1, repeats)):
        full_before.append(time_inference(module.full_logits, batches, warmup))
        method.append(time_inference(module.predict, batches, warmup))
        full_after.append(time_inference(module.full_logits, batches, warmup))
    full = full_before + full_after
    noise = min(full_before) / min(full_after)
    return {"time_s": min(method), "time_full_s": min(full), "timing_repeats": max(1, repeats),
            "time_spread": max(method) / min(method), "time_full_spread": max(full) / min(full),
            "noise_check_speedup": noise, "timing_noisy": abs(noise - 1.0) > NOISE_TOLERANCE}


def batch1_check(module: ExitModule, datamodule: TaskDataModule, batched: Mapping[str, Any], warmup: int) -> dict[str, Any]:
    """Batch-size-1 inference over the reported split: same predictions as batched, and its time."""
    singles = datamodule.eval_batches("test", batch_size=1)
    single = evaluate(module, singles)
    if module.spec.is_regression:
        identical = bool(torch.allclose(single["logits"], batched["logits"], atol=1e-4))
    else:
        identical = bool(torch.equal(single["logits"].argmax(-1), batched["logits"].argmax(-1)))
    seconds = time_inference(module.predict, singles, warmup)
    full_seconds = time_inference(module.full_logits, singles, warmup)
    return {"batch1_time_s": seconds, "batch1_full_time_s": full_seconds, "batch1_identical_predictions": identical,
            "batch1_max_abs_logit_diff": float((single["logits"] - batched["logits"]).abs().max()),
            "batch1_flops_equal": abs(single["flops"] - batched["flops"]) <= 1e-6 * batched["flops"]}


def cost_block(module: ExitModule, test: Mapping[str, Any], batches: list, cfg: DictConfig,
               datamodule: TaskDataModule) -> dict[str, Any]:
    """FLOPs and wall-clock speed-ups on the reported split (docs/methods.md section 3)."""
    block: dict[str, Any] = {
        "flops": test["flops"], "flops_full": test["flops_full"],
        "flops_speedup": test["flops_full"] / test["flops"],
        "batch_size": int(cfg.data.eval_batch_size), "threads": torch.get_num_threads(),
        "allocator": allocator_setting(), "examples": int(test["labels"].shape[0]),
    }
    if cfg.eval.timing:
        block.update(measure_times(module, batches, int(cfg.eval.warmup_batches), int(cfg.eval.timing_repeats)))
        block["measured_speedup"] = block["time_full_s"] / block["time_s"]
        block["efficiency"] = block["measured_speedup"] / block["flops_speedup"]
        if block["timing_noisy"]:
            log.warning("timing is noisy: the full model against itself measured %.3fx (more than %.0f%% off 1); "
                        "its wall-clock figures are not evidence", block["noise_check_speedup"], 100 * NOISE_TOLERANCE)
    check = cfg.eval.get("batch1_check")
    if check or (check is None and module.per_sample_exits):
        block.update(batch1_check(module, datamodule, test, int(cfg.eval.warmup_batches)))
        if "time_s" in block:
            block["batched_throughput_over_batch1"] = block["batch1_time_s"] / block["time_s"]
            # the bound batching itself sets on this machine: the same ratio for the full model
            block["full_batched_throughput_over_batch1"] = block["batch1_full_time_s"] / block["time_full_s"]
            block["batch1_ratio_vs_full"] = (block["batched_throughput_over_batch1"]
                                             / block["full_batched_throughput_over_batch1"])
    return block
