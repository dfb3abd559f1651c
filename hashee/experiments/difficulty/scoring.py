"""Scoring difficulty predictions: binary metrics per layer with "incorrect" as the positive class, their
mean over layers, the gap to the majority baseline, the exit layer each vector implies, each learned predictor
against each trivial one with a paired bootstrap interval; the seeded stratified splits; W&B tables."""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Sequence

import numpy as np

from hashee.core.errors import ConfigError
from hashee.core.stats import seeds_and_examples_interval
from hashee.experiments.difficulty.predictors import BASELINE, PREDICT_TRIVIAL
from hashee.tasks.splits import split_indices

log = logging.getLogger(__name__)


def binary_metrics(truth: np.ndarray, pred: np.ndarray, positive: int) -> dict[str, float | None]:
    """Accuracy, F1 of the ``positive`` class, TPR, TNR and sqrt(TPR * TNR); an undefined ratio is None."""
    truth, pred = np.asarray(truth).astype(int), np.asarray(pred).astype(int)
    actual, predicted = truth == positive, pred == positive
    tp, fp, fn = int((actual & predicted).sum()), int((~actual & predicted).sum()), int((actual & ~predicted).sum())
    tn = int((~actual & ~predicted).sum())
    tpr = tp / (tp + fn) if tp + fn else None
    tnr = tn / (tn + fp) if tn + fp else None
    return {"accuracy": (tp + tn) / len(truth) if len(truth) else None,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
            "tpr": tpr, "tnr": tnr,
            "gmean": math.sqrt(tpr * tnr) if tpr is not None and tnr is not None else None}


def layer_table(truth: np.ndarray, pred: np.ndarray) -> list[dict[str, Any]]:
    """Per-layer binary metrics of correctness vectors ``[N, L]``, "incorrect" (0) as the positive class."""
    rows = []
    for layer in range(truth.shape[1]):
        m = binary_metrics(truth[:, layer], pred[:, layer], positive=0)
        rows.append({"layer": layer + 1, "accuracy": m["accuracy"], "f1_incorrect": m["f1"], "tpr": m["tpr"],
                     "tnr": m["tnr"], "gmean": m["gmean"]})
    return rows


def mean_over_layers(table: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Mean of each metric over the layers where it is defined."""
    keys = [k for k in table[0] if k != "layer"]
    means = {}
    for key in keys:
        values = [row[key] for row in table if row[key] is not None]
        means[key] = float(np.mean(values)) if values else None
    return means


def stays_correct(correct: np.ndarray) -> np.ndarray:
    """``[N, L]`` 0/1: 1 from the first layer whose entry is 1 at it and at every layer above it."""
    correct = np.asarray(correct).astype(np.int64)
    return np.flip(np.cumprod(np.flip(correct, axis=1), axis=1), axis=1).copy()


def exit_layers(vectors: np.ndarray) -> np.ndarray:
    """The 1-based layer from which a 0/1 vector ``[N, L]`` stays 1 to the last layer (``L + 1``: it ends in 0)."""
    return np.asarray(vectors).shape[1] + 1 - stays_correct(vectors).sum(axis=1)


def example_agreement(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per example, the share of layers whose entry is predicted right (its mean is the mean per-layer accuracy)."""
    return (np.asarray(truth) == np.asarray(pred)).mean(axis=1)


def exit_layer_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """How well the exit layer implied by the predicted vectors matches the true one: exact share, mean |error|."""
    true_exit, predicted_exit = exit_layers(truth), exit_layers(pred)
    return {"exact": float((true_exit == predicted_exit).mean()),
            "mean_abs_error": float(np.abs(true_exit - predicted_exit).mean())}


def learned_against_trivial(truth: np.ndarray, predicted: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each learned predictor minus each trivial one in mean per-layer accuracy, paired over the examples, with its
    95 % example-bootstrap interval (the study's report pools seeds with the same statistic)."""
    rows = []
    for learned in (name for name in predicted if name not in PREDICT_TRIVIAL):
        for trivial in (name for name in PREDICT_TRIVIAL if name in predicted):
            gap = example_agreement(truth, predicted[learned]["pred"]) - example_agreement(truth, predicted[trivial]["pred"])
            interval = seeds_and_examples_interval([gap])
            rows.append({"learned": learned, "trivial": trivial, "difference": interval.mean, "low": interval.low,
                         "high": interval.high})
    return rows


def split_positions(labels: Sequence[int], indices: Sequence[int], size: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded, stratified ``(kept, held)`` split of ``indices`` (held: a fraction, or a count if >= 1)."""
    if len(indices) < 2:
        raise ConfigError(f"difficulty: a split of {len(indices)} example(s) cannot be divided; use a larger pool")
    keep, held = split_indices([labels[i] for i in indices], len(indices), size, seed)
    return [indices[i] for i in keep], [indices[i] for i in held]


def score_predictors(y_test: np.ndarray, predicted: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-layer table, mean over layers and mean accuracy gap to the majority baseline of each predictor."""
    scored = {}
    for name, item in predicted.items():
        table = layer_table(y_test, item["pred"])
        scored[name] = {"per_layer": table, "mean": mean_over_layers(table), "exit_layer": exit_layer_scores(y_test, item["pred"]),
                        "train_loss": item["train_loss"]}
    majority = scored[BASELINE]["mean"]["accuracy"]
    for item in scored.values():
        item["mean_accuracy_gap_vs_majority"] = item["mean"]["accuracy"] - majority
    return scored


def log_to_wandb(logger: Any | None, results: Mapping[str, Any]) -> None:
    """Per-layer tables, a line plot of predictor accuracy vs the majority baseline, summary scalars (never fatal)."""
    if logger is None:
        return
    try:
        import wandb

        run = logger.experiment
        scored = results.get("predictors", {})
        if scored:
            columns = ["predictor", *scored[BASELINE]["per_layer"][0]]
            rows = [[name, *row.values()] for name, item in scored.items() for row in item["per_layer"]]
            layers = [row["layer"] for row in scored[BASELINE]["per_layer"]]
            run.log({"difficulty/per_layer": wandb.Table(columns=columns, data=rows),
                     "difficulty/accuracy_vs_majority": wandb.plot.line_series(
                         xs=layers, ys=[[row["accuracy"] for row in item["per_layer"]] for item in scored.values()],
                         keys=list(scored), title="predictor accuracy vs majority, per layer", xname="layer")})
            run.summary.update({f"difficulty/{name}/{key}": value for name, item in scored.items()
                                for key, value in item["mean"].items() if value is not None})
        run.summary.update({"primary": results["primary"], **{f"human/{k}": v for k, v in results.get("metrics", {}).items()
                                                              if v is not None}})
        run.finish()
    except Exception as exc:  # noqa: BLE001 - W&B must never fail a run
        log.warning("W&B difficulty tables not logged: %s", exc)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
