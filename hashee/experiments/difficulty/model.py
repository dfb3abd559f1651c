"""Learnability of model-defined difficulty (docs/methods.md section 5): ``experiment=difficulty_model``.

1. the pool is the task's whole training split (train + the val carved from it; the test split is
   never touched); it is split, seeded and stratified, into part A and a disjoint part B;
2. a multi-exit model (``experiment.multi_exit_method``, built through Hydra: ``hashee`` never imports
   ``baselines``) trains on A, its checkpoint selected on a validation carved out of A;
3. on B, each instance gets a 0/1 vector over layers. ``experiment.target``: ``stays_correct`` (default)
   marks the layers from the instance's model-defined difficulty on, the first layer whose head is correct
   and stays correct at every layer above (``L + 1`` when the last head is wrong); ``correct``: "layer i's
   head predicts correctly" on its own;
4. B is split into predictor-train / predictor-test; the predictors of
   :mod:`hashee.experiments.difficulty.predictors` and the trivial ones (majority, length, the full
   model's confidence) learn the vector on the first and are scored per layer on the second (label 0 =
   "incorrect" is the positive class); each learned predictor is compared with each trivial one, paired
   over the predictor-test examples; the per-example vectors go to ``difficulty.npz`` beside results.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import datasets
import numpy as np
import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from hashee.core.backbone import load_backbone
from hashee.core.errors import ConfigError
from hashee.data.classification import TaskDataModule
from hashee.experiments.difficulty import predictors as P
from hashee.experiments.difficulty.predictors import BASELINE, PredictorData, run_predictors
from hashee.experiments.difficulty.scoring import (exit_layers, fmt, learned_against_trivial, log_to_wandb,
                                                   score_predictors, split_positions, stays_correct)
from hashee.experiments.steps import build_data, finish_run, instantiate_method, start_run
from hashee.experiments.training import train
from hashee.runs.logger import make_logger
from hashee.runs.results import DIFFICULTY_FILE
from hashee.tasks.spec import TaskSpec


def pool_splits(labels: Sequence[int], exp: Mapping[str, Any]) -> dict[str, list[int]]:
    """Disjoint pool indices: ``a_train`` + ``a_val`` (part A), ``predictor_train`` + ``predictor_test`` (part B)."""
    seed = int(exp["seed"])
    part_a, part_b = split_positions(labels, list(range(len(labels))), float(exp["pool_b_fraction"]), seed)
    a_train, a_val = split_positions(labels, part_a, float(exp["a_val_fraction"]), seed)
    b_train, b_test = split_positions(labels, part_b, float(exp["predictor_test_fraction"]), seed)
    return {"a_train": a_train, "a_val": a_val, "predictor_train": b_train, "predictor_test": b_test}


def correctness_vectors(layer_logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """``[N, L]`` 0/1: whether layer i's head (logits ``[L, N, C]``) predicts the gold label."""
    return (layer_logits.argmax(dim=-1) == labels[None, :]).T.long().numpy()


TARGETS = {"stays_correct": stays_correct, "correct": lambda correct: np.asarray(correct).astype(np.int64)}


def target_name(exp: Mapping[str, Any]) -> str:
    """``experiment.target`` (default ``stays_correct``); ConfigError for an unknown one, before any training."""
    name = str(exp.get("target", "stays_correct"))
    if name not in TARGETS:
        raise ConfigError(f"experiment.target={name}: unknown (known: {', '.join(TARGETS)})")
    return name


def top1_probability(layer_logits: torch.Tensor) -> np.ndarray:
    """``[N]``: the last layer's (the full model's) top-1 softmax probability."""
    return layer_logits[-1].float().softmax(dim=-1).max(dim=-1).values.numpy()


def save_examples(run_dir: Path, positions: Sequence[int], rows: P.Rows, correct: np.ndarray, target: np.ndarray,
                  confidence: np.ndarray, predicted: Mapping[str, Mapping[str, Any]]) -> None:
    """The per-example outputs of predictor-test (pool position, label, length, per-layer correctness, target,
    the full model's confidence, every predictor's 0/1 vector) as ``difficulty.npz``."""
    np.savez_compressed(
        run_dir / DIFFICULTY_FILE, pool_position=np.asarray(positions), label=np.asarray([r["label"] for r in rows]),
        length=np.asarray([len(r["input_ids"]) for r in rows]), correct=correct.astype(np.int8),
        target=target.astype(np.int8), confidence=confidence.astype(np.float32),
        **{f"pred_{name}": np.asarray(item["pred"]).astype(np.int8) for name, item in predicted.items()})


def classification_spec(cfg: DictConfig) -> TaskSpec:
    """The task's spec; ConfigError for a regression task (no per-layer "correct")."""
    spec = TaskSpec.from_config(cfg.task)
    if spec.is_regression:
        raise ConfigError(f"experiment={cfg.experiment.name}: task {spec.name} is a regression task; "
                          "per-layer correctness needs a classification task")
    return spec


def datamodule_with(base: TaskDataModule, encoded: dict[str, datasets.Dataset]) -> TaskDataModule:
    """A data module like ``base`` that serves the given (already tokenized) splits."""
    module = TaskDataModule(base.spec, base.data_cfg, base.tokenizer, base.tokenizer_name,
                            batch_size=base.batch_size, eval_batch_size=base.eval_batch_size,
                            max_length=base.max_length, seed=base.seed)
    module.encoded = encoded
    return module


def layer_outputs(module: Any, rows: P.Rows, batch_size: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every layer's head logits ``[L, N, C]`` and pooled vector ``[N, L, d]`` (what the heads read: [CLS] or
    the mean of the real tokens, docs/methods.md 2a) of a multi-exit model, in row order."""
    logits: list[Any] = [None] * len(rows)
    pooled: list[Any] = [None] * len(rows)
    module.eval()
    labels = np.zeros((len(rows), 1))
    with torch.no_grad():
        for indices in P.length_sorted_chunks(rows, batch_size):
            batch = P.make_batch(rows, labels, indices, pad_id)
            mask = batch["attention_mask"]
            states = module.hidden_states(batch)
            batch_logits = torch.stack([module.layer_head(i, h, mask).logits.float() for i, h in enumerate(states)], dim=1)
            batch_pooled = torch.stack([module.encoder.pooled_vector(h, mask).float() for h in states], dim=1)
            for j, i in enumerate(indices):
                logits[i], pooled[i] = batch_logits[j], batch_pooled[j]
    return torch.stack(logits).transpose(0, 1), torch.stack(pooled)


def run_difficulty_model(cfg: DictConfig, run_dir: Path, fingerprint: str | None = None) -> dict[str, Any]:
    """Train a multi-exit model on part A, label part B by per-layer correctness, score the predictors."""
    run_dir, exp = Path(run_dir), cfg.experiment
    spec = classification_spec(cfg)
    target_name(exp)
    results = start_run(cfg, run_dir, fingerprint, experiment=str(cfg.experiment.name))

    backbone = load_backbone(cfg.backbone)
    base = build_data(cfg, spec, backbone.tokenizer, backbone.source)
    pool = datasets.concatenate_datasets([base.encoded["train"], base.encoded["val"]])
    labels = list(pool["label"])
    splits = pool_splits(labels, exp)
    part_b = splits["predictor_train"] + splits["predictor_test"]
    encoded = {"train": pool.select(splits["a_train"]), "val": pool.select(splits["a_val"]), "test": pool.select(part_b)}
    module = instantiate_method(exp.multi_exit_method, spec=spec, backbone=backbone, optim=cfg.optim)
    logger = make_logger(cfg, run_dir, results["config"])
    results["multi_exit"] = {"method": str(exp.multi_exit_method.get("name", exp.multi_exit_method._target_)),
                             "train": train(cfg, module, datamodule_with(base, encoded), run_dir, logger)}

    pad_id = backbone.tokenizer.pad_token_id or 0
    rows = encoded["test"].to_list()
    logits, pooled = layer_outputs(module, rows, int(cfg.data.eval_batch_size), pad_id)
    correct = correctness_vectors(logits, torch.as_tensor([r["label"] for r in rows]))
    target = TARGETS[target_name(exp)](correct)
    confidence = top1_probability(logits)
    n = len(splits["predictor_train"])
    data = PredictorData(rows[:n], rows[n:], target[:n], target[n:], pooled[:n], pooled[n:], confidence[:n], confidence[n:])

    predicted = run_predictors(cfg, data, pad_id)
    scored = score_predictors(data.y_test, predicted)
    primary = primary_predictor(exp, scored)
    save_examples(run_dir, splits["predictor_test"], rows[n:], correct[n:], data.y_test, confidence[n:], predicted)
    results.update(
        splits={"pool": len(pool), **{name: len(idx) for name, idx in splits.items()}, "part_b": len(part_b)},
        target=target_name(exp),
        correct_rate={"part_b": correct.mean(axis=0).tolist(), "predictor_train": data.y_train.mean(axis=0).tolist(),
                      "predictor_test": data.y_test.mean(axis=0).tolist()},
        difficulty_histogram=np.bincount(exit_layers(correct[n:]) - 1, minlength=correct.shape[1] + 1).tolist(),
        predictors=scored, against_trivial=learned_against_trivial(data.y_test, predicted),
        primary_metric="mean_accuracy_gap_vs_majority", primary_predictor=primary,
        primary=scored[primary]["mean_accuracy_gap_vs_majority"],
    )
    finish_run(run_dir, results, logger, log=log_to_wandb, show=print_model_table)
    return results


def primary_predictor(exp: Mapping[str, Any], scored: Mapping[str, Any]) -> str:
    """The predictor named before the run (``experiment.primary_predictor``; never the best on predictor-test,
    which would choose on the split it is scored on); the majority baseline when it did not run."""
    name = str(exp.get("primary_predictor", "encoder"))
    return name if name in scored else BASELINE


def print_model_table(results: Mapping[str, Any], console: Console | None = None) -> None:
    """Mean over layers of each predictor's metrics, and the per-layer correct rate on predictor-test."""
    table = Table(title=f"{results['task']}: learnability of model-defined difficulty (mean over layers)")
    for column in ("predictor", "acc", "acc - maj", "F1 wrong", "TPR", "TNR", "gmean", "exit exact", "exit |err|"):
        table.add_column(column, justify="left" if column == "predictor" else "right", no_wrap=True)
    for name, item in results["predictors"].items():
        mean, exit_layer = item["mean"], item.get("exit_layer", {})
        table.add_row(name, fmt(mean["accuracy"]), fmt(item["mean_accuracy_gap_vs_majority"]), fmt(mean["f1_incorrect"]),
                      fmt(mean["tpr"]), fmt(mean["tnr"]), fmt(mean["gmean"]), fmt(exit_layer.get("exact")),
                      fmt(exit_layer.get("mean_abs_error")))
    console = console or Console()
    console.print(table)
    rates = " ".join(f"{r:.2f}" for r in results["correct_rate"]["predictor_test"])
    console.print(f"per-layer correct rate on predictor-test: {rates}")
    console.print(f"results: {Path(results['run_dir']) / 'results.json'}")
