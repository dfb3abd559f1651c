"""A task's metrics from a model's outputs: classification tasks get logits ``[N, C]`` (prediction = argmax),
regression tasks scores ``[N]`` or ``[N, 1]``. Names:

* ``accuracy``, ``f1`` (binary, positive class 1), ``matthews`` -- classification;
* ``pearson``, ``spearman`` -- regression;
* ``acc_and_f1`` (mean of accuracy and f1) and ``pearson_spearman`` (mean of both
  correlations), added whenever a task lists both of their parts.

Each metric is defined once, in :mod:`hashee.core.metrics`: what a run records is what the bootstrap resamples.
"""

from __future__ import annotations

from typing import Iterable, Protocol

import torch

from hashee.core.metrics import DERIVED_METRICS, metric

CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews")
REGRESSION_METRICS = ("pearson", "spearman")


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
    if spec.is_regression:
        y, p = target.double().numpy(), preds.double().numpy()
    else:
        y, p = target.long().numpy(), preds.long().numpy()
    return {name: metric(name, y, p) for name in metric_names(spec.metrics)}
