"""Task metrics computed with the torchmetrics functional API.

Classification tasks get logits ``[N, C]`` (prediction = argmax); regression tasks get
scores ``[N]`` or ``[N, 1]``. Names returned by :func:`compute_metrics`:

* ``accuracy``, ``f1`` (binary, positive class 1), ``matthews`` -- classification;
* ``pearson``, ``spearman`` -- regression;
* ``acc_and_f1`` (mean of accuracy and f1) and ``pearson_spearman`` (mean of both
  correlations), added whenever a task lists both of their parts.
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol

import torch
from torchmetrics.functional import (
    matthews_corrcoef,
    pearson_corrcoef,
    spearman_corrcoef,
)
from torchmetrics.functional.classification import binary_f1_score, multiclass_accuracy

CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews")
REGRESSION_METRICS = ("pearson", "spearman")
DERIVED_METRICS = {
    "acc_and_f1": ("accuracy", "f1"),
    "pearson_spearman": ("pearson", "spearman"),
}


class LabelSpace(Protocol):
    """What the metrics read of a task (:class:`hashee.tasks.spec.TaskSpec` has it): its label space and metrics."""

    num_labels: int
    is_regression: bool
    metrics: tuple[str, ...]


def metric_names(metrics: Iterable[str]) -> tuple[str, ...]:
    """Every name :func:`compute_metrics` returns for a task listing ``metrics``."""
    listed = tuple(metrics)
    derived = tuple(name for name, parts in DERIVED_METRICS.items() if set(parts) <= set(listed))
    return listed + derived


def predictions(spec: LabelSpace, logits: torch.Tensor) -> torch.Tensor:
    """Class ids (argmax over the last dim) or regression scores (shape ``[N]``)."""
    if spec.is_regression:
        if logits.dim() == 2 and logits.shape[1] == 1:
            return logits[:, 0].float()
        if logits.dim() != 1:
            raise ValueError(f"regression logits must be [N] or [N, 1], got {tuple(logits.shape)}")
        return logits.float()
    if logits.dim() != 2 or logits.shape[1] != spec.num_labels:
        raise ValueError(
            f"classification logits must be [N, {spec.num_labels}], got {tuple(logits.shape)}"
        )
    return logits.argmax(dim=-1)


def compute_metrics(spec: LabelSpace, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """All metrics the task lists plus their derived means, as Python floats."""
    preds = predictions(spec, logits.detach().cpu())
    target = labels.detach().cpu().reshape(-1)
    if preds.shape[0] != target.shape[0]:
        raise ValueError(f"{preds.shape[0]} predictions but {target.shape[0]} labels")
    if target.numel() == 0:
        raise ValueError("cannot compute metrics on zero examples")
    if spec.is_regression:  # correlations in float64: exact enough at any N
        preds, target = preds.double(), target.double()
    else:
        target = target.long()
    values = {name: float(_metric_fn(name)(spec, preds, target)) for name in spec.metrics}
    for name, parts in DERIVED_METRICS.items():
        if all(part in values for part in parts):
            values[name] = sum(values[part] for part in parts) / len(parts)
    return values


def _metric_fn(name: str) -> Callable[[LabelSpace, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The function computing one listed metric from predictions and targets."""
    table: dict[str, Callable[[LabelSpace, torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "accuracy": _accuracy,
        "f1": _f1,
        "matthews": _matthews,
        "pearson": lambda spec, p, t: pearson_corrcoef(p, t),
        "spearman": lambda spec, p, t: spearman_corrcoef(p, t),
    }
    if name not in table:
        raise ValueError(f"unknown metric {name!r}; known: {sorted(table)}")
    return table[name]


def _accuracy(spec: LabelSpace, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of exactly right predictions (micro accuracy)."""
    return multiclass_accuracy(preds, target, num_classes=spec.num_labels, average="micro")


def _f1(spec: LabelSpace, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary F1 of class 1."""
    return binary_f1_score(preds, target)


def _matthews(spec: LabelSpace, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Matthews correlation (multiclass form; equals the binary one for C=2); 0 when predictions or labels are constant (undefined: torchmetrics 1.9 returns a
    small non-zero value there, from the epsilon it adds to avoid dividing by zero)."""
    if preds.unique().numel() < 2 or target.unique().numel() < 2:
        return torch.tensor(0.0)
    return matthews_corrcoef(preds, target, task="multiclass", num_classes=spec.num_labels)
