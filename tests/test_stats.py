"""Statistics with known answers: paired differences, Pareto scores, intervals (hashee/stats.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hashee.core.stats import Outputs, curve_gap, metric, metric_interval, pareto_front, pareto_score, seed_interval
from hashee.tasks.metrics import compute_metrics
from hashee.tasks.spec import TaskSpec


def _outputs(n: int, correct: int, seed: int = 0) -> Outputs:
    """Binary labels; the first ``correct`` examples predicted right, the rest wrong."""
    labels = np.random.default_rng(seed).integers(0, 2, n)
    predicted = labels.copy()
    predicted[correct:] = 1 - predicted[correct:]
    return Outputs(labels, predicted)


def test_a_curve_shifted_by_two_points_scores_two():
    labels = _outputs(1000, 1000).labels

    def at(correct: int) -> Outputs:
        return Outputs(labels, np.where(np.arange(1000) < correct, labels, 1 - labels))

    reference = [(1.0, [at(900)]), (2.0, [at(850)]), (3.0, [at(800)])]
    shifted = [(1.5, [at(895)]), (2.5, [at(845)])]  # +2 points over static's interpolated line at 1.5 and 2.5
    score, low, high = pareto_score("accuracy", shifted, reference, resamples=200)
    assert score == pytest.approx(2.0)
    assert low <= score <= high
    assert pareto_score("accuracy", [(4.0, [at(900)])], reference, resamples=10) is None  # no common range


def test_curve_gap_interpolates_over_the_common_range_only():
    gap = curve_gap(np.array([1.0, 3.0]), np.array([0.9, 0.7]), np.array([2.0, 4.0]), np.array([0.7, 0.5]))
    assert gap == pytest.approx(0.1)  # on [2, 3]: 0.8..0.7 vs 0.7..0.6


def test_interval_narrows_as_examples_grow():
    small = metric_interval("accuracy", _outputs(200, 160), resamples=300)
    large = metric_interval("accuracy", _outputs(5000, 4000), resamples=300)
    assert small[0] < 0.8 < small[1] and large[0] < 0.8 < large[1]
    assert (large[1] - large[0]) < (small[1] - small[0]) / 3


def test_seed_interval_is_the_t_interval_of_the_mean():
    low, high = seed_interval([0.80, 0.82, 0.84])
    assert (low + high) / 2 == pytest.approx(0.82)
    assert high - low == pytest.approx(2 * 4.302653 * 0.02 / np.sqrt(3), rel=1e-4)
    assert seed_interval([0.8]) is None


@pytest.mark.parametrize("name", ["accuracy", "f1", "matthews", "pearson", "spearman"])
def test_numpy_metrics_equal_the_torchmetrics_ones(name):
    regression = name in ("pearson", "spearman")
    cfg = {"name": "t", "source": "local", "text_columns": ["x"], "metrics": [name]}
    cfg.update({"label_type": "regression"} if regression else {"num_labels": 2})
    spec = TaskSpec.from_config(cfg)
    rng = np.random.default_rng(3)
    if regression:
        labels, predicted = rng.normal(size=200), rng.normal(size=200)
        logits = torch.as_tensor(predicted, dtype=torch.float32)[:, None]
    else:
        labels, predicted = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
        logits = torch.nn.functional.one_hot(torch.as_tensor(predicted), 2).float()
    expected = compute_metrics(spec, logits, torch.as_tensor(labels, dtype=torch.float32 if regression else torch.long))
    assert metric(name, labels, predicted) == pytest.approx(expected[name], abs=1e-5)


def test_pareto_front_keeps_the_undominated_points():
    front = pareto_front({"a": [(1.0, 0.9), (2.0, 0.8)], "b": [(2.0, 0.85), (1.5, 0.7)]})
    assert front == [("a", 1.0, 0.9), ("b", 2.0, 0.85)]
