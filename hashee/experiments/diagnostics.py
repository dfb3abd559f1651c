"""Per-exit diagnostics: how good each exit head is on its own, and whether it beats a trivial predictor.

For every head of a run (the single head of the full model, static-k and HashEE; each layer's head of
the instance-level methods) this computes the task's metrics when *every* example exits there, on
the validation split and on the reported split. A head is flagged ``degenerate`` when, on the
validation split, it is not significantly better than the trivial predictor (one-sided test at 5 %):

- classification: its accuracy against the rate of the training split's majority class
  (exact binomial test, ``scipy.stats.binomtest``);
- regression: the trivial predictor is the training mean, a constant with no rank information, so
  the test is whether the head's Spearman correlation with the labels is above 0 (``spearmanr``,
  one-sided). A constant head gives no correlation and p = 1.

So nobody again reads a degenerate head (e.g. one that predicts one class) as a property of the method.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any, Mapping, Sequence

import torch
from scipy import stats

from hashee.tasks.metrics import compute_metrics, predictions
from hashee.tasks.spec import TaskSpec

log = logging.getLogger(__name__)
SIGNIFICANCE = 0.05


def majority_class(train_labels: Sequence[float]) -> int:
    """The most frequent label of the training split (ties: the smallest label)."""
    counts = Counter(int(y) for y in train_labels)
    return min(counts, key=lambda label: (-counts[label], label))


def trivial_logits(spec: TaskSpec, train_labels: Sequence[float], count: int) -> torch.Tensor:
    """Logits ``[count, C]`` of the trivial predictor: the majority class, or (regression) the training mean."""
    if spec.is_regression:
        mean = float(sum(train_labels)) / max(1, len(train_labels))
        return torch.full((count, 1), mean)
    logits = torch.zeros(count, spec.num_labels)
    logits[:, majority_class(train_labels)] = 1.0
    return logits


def p_value_above_trivial(spec: TaskSpec, logits: torch.Tensor, labels: torch.Tensor, train_labels: Sequence[float]) -> float:
    """One-sided p-value that the head beats the trivial predictor on these examples (see the module doc)."""
    predicted = predictions(spec, logits.float())
    if spec.is_regression:
        if float(predicted.std()) == 0.0 or float(labels.float().std()) == 0.0:
            return 1.0
        p = stats.spearmanr(predicted.numpy(), labels.float().numpy(), alternative="greater").pvalue
        return 1.0 if math.isnan(p) else float(p)
    majority = majority_class(train_labels)
    rate = float((labels == majority).float().mean())
    correct = int((predicted == labels).sum())
    return float(stats.binomtest(correct, int(labels.numel()), rate, alternative="greater").pvalue)


def head_logits(module: Any, batches: list[Mapping[str, torch.Tensor]], evaluated: torch.Tensor) -> dict[int, torch.Tensor]:
    """``{layer: logits}`` of every exit head; a single-head method's are its evaluated logits."""
    per_head = module.exit_head_logits(batches)
    return per_head if per_head is not None else {int(module.head_layer): evaluated}


def exit_diagnostics(module: Any, spec: TaskSpec, train_labels: Sequence[float],
                     splits: Mapping[str, tuple[list[Mapping[str, torch.Tensor]], Mapping[str, Any]]]) -> dict[str, Any]:
    """Per-head metrics on each split (``{name: (batches, evaluated)}``, ``val`` first) and the degeneracy test on val."""
    per_split = {name: (head_logits(module, batches, evaluated["logits"]), evaluated["labels"])
                 for name, (batches, evaluated) in splits.items()}
    val_heads, val_labels = per_split["val"]
    heads = []
    for layer in sorted(val_heads):
        p = p_value_above_trivial(spec, val_heads[layer], val_labels, train_labels)
        entry: dict[str, Any] = {"layer": layer, "p_value_vs_trivial": p, "degenerate": bool(p >= SIGNIFICANCE)}
        for name, (logits, labels) in per_split.items():
            entry[name] = compute_metrics(spec, logits[layer], labels)
        heads.append(entry)
    trivial = {name: trivial_metrics(spec, train_labels, labels) for name, (_, labels) in per_split.items()}
    degenerate = [h["layer"] for h in heads if h["degenerate"]]
    for head in heads:
        if head["degenerate"]:
            log.warning("exit head at layer %d is not significantly better than the %s on validation "
                        "(%s %.4f vs %.4f, one-sided p = %.3g)", head["layer"], trivial_name(spec),
                        spec.primary_metric, head["val"][spec.primary_metric], trivial["val"][spec.primary_metric],
                        head["p_value_vs_trivial"])
    return {"trivial_predictor": trivial_name(spec), "trivial": trivial, "significance": SIGNIFICANCE,
            "heads": heads, "degenerate_heads": degenerate}


def trivial_metrics(spec: TaskSpec, train_labels: Sequence[float], labels: torch.Tensor) -> dict[str, float]:
    """The trivial predictor's metrics; a constant's correlations are undefined and stated as 0."""
    metrics = compute_metrics(spec, trivial_logits(spec, train_labels, int(labels.numel())), labels)
    return {k: (0.0 if math.isnan(v) else v) for k, v in metrics.items()}


def trivial_name(spec: TaskSpec) -> str:
    return "training mean" if spec.is_regression else "majority class"
