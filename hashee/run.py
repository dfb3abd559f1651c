"""One run: config -> task -> data -> method -> train (select on val) -> calibrate (val) -> test -> results."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar

from hashee.backbone import load_backbone
from hashee.cache import DamagedCache, load_checked, torch_load, torch_save
from hashee.cost import time_inference
from hashee.data import TaskDataModule
from hashee.distributed import is_rank_zero
from hashee.errors import HasheeError
from hashee.logging_utils import log_summary, make_logger, print_summary
from hashee.diagnostics import exit_diagnostics
from hashee.metrics import compute_metrics, predictions
from hashee.module import ExitModule, example_index
from hashee.results import Interrupted, package_versions, write_results
from hashee.stats import Outputs, metric_interval
from hashee.sweep import config_fingerprint
from hashee.tasks import TaskSpec

log = logging.getLogger(__name__)
PREDICTIONS_FILE = "predictions.npz"
logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)  # no banner/tips
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")


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
    try:
        return hydra.utils.instantiate(method, _recursive_=False, **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, HasheeError):
            raise exc.__cause__ from None
        raise


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


def measure_times(module: ExitModule, batches: list[Mapping[str, torch.Tensor]], warmup: int, repeats: int) -> tuple[float, float]:
    """Wall-clock (method, full model) over the same batches, same process and threads; best of ``repeats``.

    The two are interleaved so that a slow phase of the machine hits both alike.
    """
    method_times, full_times = [], []
    for _ in range(max(1, repeats)):
        full_times.append(time_inference(module.full_logits, batches, warmup))
        method_times.append(time_inference(module.predict, batches, warmup))
    return min(method_times), min(full_times)


def batch1_check(module: ExitModule, datamodule: TaskDataModule, batched: Mapping[str, Any], warmup: int) -> dict[str, Any]:
    """Batch-size-1 inference over the reported split: same predictions as batched, and its time."""
    singles = datamodule.eval_batches("test", batch_size=1)
    single = evaluate(module, singles)
    if module.spec.is_regression:
        identical = bool(torch.allclose(single["logits"], batched["logits"], atol=1e-4))
    else:
        identical = bool(torch.equal(single["logits"].argmax(-1), batched["logits"].argmax(-1)))
    seconds = time_inference(module.predict, singles, warmup)
    return {"batch1_time_s": seconds, "batch1_identical_predictions": identical,
            "batch1_max_abs_logit_diff": float((single["logits"] - batched["logits"]).abs().max()),
            "batch1_flops_equal": abs(single["flops"] - batched["flops"]) <= 1e-6 * batched["flops"]}


def cost_block(module: ExitModule, test: Mapping[str, Any], batches: list, cfg: DictConfig,
               datamodule: TaskDataModule) -> dict[str, Any]:
    """FLOPs and wall-clock speed-ups on the reported split (METHODS.md section 3)."""
    block: dict[str, Any] = {
        "flops": test["flops"], "flops_full": test["flops_full"],
        "flops_speedup": test["flops_full"] / test["flops"],
        "batch_size": int(cfg.data.eval_batch_size), "threads": torch.get_num_threads(),
        "examples": int(test["labels"].shape[0]),
    }
    if cfg.eval.timing:
        time_s, time_full_s = measure_times(module, batches, int(cfg.eval.warmup_batches), int(cfg.eval.timing_repeats))
        block.update(time_s=time_s, time_full_s=time_full_s, measured_speedup=time_full_s / time_s)
        block["efficiency"] = block["measured_speedup"] / block["flops_speedup"]
    check = cfg.eval.get("batch1_check")
    if check or (check is None and module.per_sample_exits):
        block.update(batch1_check(module, datamodule, test, int(cfg.eval.warmup_batches)))
        if "time_s" in block:
            block["batched_throughput_over_batch1"] = block["batch1_time_s"] / block["time_s"]
    return block


def fit_stage(cfg: DictConfig, module: ExitModule, datamodule: TaskDataModule, run_dir: Path, logger: Any,
              stage: str) -> dict[str, Any]:
    """Fit one training stage; keep the checkpoint that is best on the validation split."""
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename=f"best-{stage}", monitor="val/primary",
                                 mode="max", save_top_k=1, save_weights_only=True, auto_insert_metric_name=False)
    callbacks = [checkpoint, RichProgressBar(leave=True)] if cfg.progress_bar else [checkpoint]
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=logger or False,
                                                  default_root_dir=str(run_dir), enable_progress_bar=bool(cfg.progress_bar))
    module.train()  # from_pretrained returns eval mode, and Lightning keeps the mode it finds
    start = time.perf_counter()
    fit_or_raise(trainer, module, datamodule)
    seconds = time.perf_counter() - start
    best = checkpoint.best_model_path
    if best:
        module.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    score = checkpoint.best_model_score
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
    speed-up, evaluation, logging), so one trained model serves its whole curve, and by the code.
    """
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in ("target_speedup", "eval", "logger", "progress_bar"):
        plain.pop(key, None)
    plain.get("hashee", {}).pop("target_speedup", None)
    plain.get("data", {}).pop("cache_dir", None)
    payload = json.dumps([plain, code_fingerprint()], sort_keys=True, default=str)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:24]
    return Path(cache_dir(cfg)) / "trained" / f"{cfg.task.name}-{cfg.method.name}-{digest}.pt"


def code_fingerprint() -> str:
    """sha256 of the source files of the method packages: a code change never reuses an older model."""
    digest = hashlib.sha256()
    for package in ("hashee", "baselines"):  # located, not imported (hashee never imports baselines)
        spec = importlib.util.find_spec(package)
        for path in sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.py")) if spec else []:
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def train_or_reuse(cfg: DictConfig, module: ExitModule, datamodule: TaskDataModule, run_dir: Path,
                   logger: Any) -> dict[str, Any]:
    """Train, or load the weights another target of the same configuration already trained.

    Only for methods whose training does not depend on the target (``module.training_uses_target``
    is False) and when ``reuse_training`` is on; HashEE's hash, hence its training, depends on it.
    """
    if module.training_uses_target or not cfg.get("reuse_training", True):
        return train(cfg, module, datamodule, run_dir, logger)
    path = trained_model_file(cfg)
    saved = load_checked(path, lambda p: load_trained_model(p, module))  # a damaged file is set aside
    if saved is not None:
        log.info("reusing the model trained for another target speed-up: %s", path)
        return {**saved, "reused_from": str(path)}
    info = train(cfg, module, datamodule, run_dir, logger)
    torch_save({"state_dict": module.state_dict(), "train_json": json.dumps(info)}, path)  # atomic
    return info


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


def start_run(cfg: DictConfig, run_dir: Path, fingerprint: str | None) -> dict[str, Any]:
    """Threads and seeds set, and ``results.json`` started (``status: running``) with the run's identity."""
    if cfg.eval.threads:
        torch.set_num_threads(int(cfg.eval.threads))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    results: dict[str, Any] = {"task": cfg.task.name, "method": cfg.method.name, "seed": int(cfg.seed),
                               "run_dir": str(run_dir), "config_fingerprint": fingerprint or config_fingerprint(cfg),
                               "config": OmegaConf.to_container(cfg, resolve=True), "versions": package_versions()}
    write_results(run_dir, results, status="running")
    return results


def run_experiment(cfg: DictConfig, run_dir: Path, fingerprint: str | None = None) -> dict[str, Any]:
    """Run one configured experiment end to end and write ``results.json`` into ``run_dir``."""
    if cfg.get("experiment") and cfg.experiment.name != "default":
        from hashee.difficulty import run_difficulty  # imports this module: loaded on demand

        return run_difficulty(cfg, Path(run_dir), fingerprint)
    if str(cfg.task.get("label_type", "")) == "generation":
        from hashee.generation_run import run_generation  # imports this module: loaded on demand

        return run_generation(cfg, Path(run_dir), fingerprint)
    run_dir = Path(run_dir)
    results = start_run(cfg, run_dir, fingerprint)
    resolved = results["config"]

    spec = TaskSpec.from_config(cfg.task)
    backbone = load_backbone(cfg.backbone)
    datamodule = build_data(cfg, spec, backbone.tokenizer, backbone.source)
    module: ExitModule = instantiate_method(cfg.method, spec=spec, backbone=backbone, optim=cfg.optim)
    method_info = {"pooling": backbone.pooling, "prepare": module.prepare(datamodule, cache_dir(cfg))}
    log.info("heads read the %s pooled vector (backbone.pooling=%s)", backbone.pooling, cfg.backbone.get("pooling", "auto"))
    logger = make_logger(cfg, run_dir, resolved)

    results["train"] = train_or_reuse(cfg, module, datamodule, run_dir, logger)
    if not is_rank_zero():  # DDP: the other ranks only train; rank 0 evaluates and writes results.json
        return results
    results["train"].update(examples=len(datamodule.encoded["train"]), val_examples=len(datamodule.encoded["val"]))
    module.eval()
    target = cfg.get("target_speedup")
    method_info["operating_point"] = module.calibrate(datamodule, None if target is None else float(target))

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
    results.update(
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
    write_results(run_dir, results, status="complete")
    log_summary(logger, results)
    print_summary(results)
    return results
