"""The task metrics, defined once: what a run records (:func:`hashee.tasks.metrics.compute_metrics`) and what the
bootstrap resamples (:mod:`hashee.core.stats`) are the same functions.

Each metric is a NumPy function of labels and predictions (float64; scikit-learn and SciPy where they have it),
fast enough for thousands of bootstrap resamples. A metric that is undefined on constant predictions or labels
(Matthews, the correlations) is 0 there: such a predictor carries no information about the labels.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats
from sklearn.metrics import matthews_corrcoef

DERIVED_METRICS = {
    "acc_and_f1": ("accuracy", "f1"),
    "pearson_spearman": ("pearson", "spearman"),
}


def _correlation(kind: str) -> Callable[[np.ndarray, np.ndarray], float]:
    def value(labels: np.ndarray, predicted: np.ndarray) -> float:
        if np.ptp(predicted) == 0 or np.ptp(labels) == 0:
            return 0.0  # a constant has no correlation (undefined: NaN in SciPy)
        fn = stats.pearsonr if kind == "pearson" else stats.spearmanr
        return float(fn(labels, predicted)[0])
    return value


def _binary_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """F1 of class 1 (0 when there is no true or predicted positive)."""
    true_pos = float(np.sum((predicted == 1) & (labels == 1)))
    wrong = float(np.sum(predicted != labels))
    return 2 * true_pos / (2 * true_pos + wrong) if true_pos else 0.0


def _matthews(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Matthews correlation (multiclass form; the binary one for 2 classes); 0 when either side is constant."""
    if len(np.unique(predicted)) < 2 or len(np.unique(labels)) < 2:
        return 0.0
    return float(matthews_corrcoef(labels, predicted))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda y, p: float(np.mean(y == p)),  # micro: the share of right predictions
    "f1": _binary_f1,
    "matthews": _matthews,
    "pearson": _correlation("pearson"),
    "spearman": _correlation("spearman"),
}
for _name, _parts in DERIVED_METRICS.items():
    METRICS[_name] = lambda y, p, parts=_parts: sum(METRICS[part](y, p) for part in parts) / len(parts)


def metric(name: str, labels: np.ndarray, predicted: np.ndarray) -> float:
    """The task metric ``name`` of predictions against labels (NumPy arrays)."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name](labels, predicted)
