"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from hashee.tasks.metrics import compute_metrics, metric_names, predictions
from hashee.tasks.spec import TaskSpec


def spec(num_labels: int = 2, metrics: list[str] | None = None, regression: bool = False) -> TaskSpec:
    cfg = {"name": "t", "source": "local", "text_columns": ["x"], "metrics": metrics}
    cfg.update({"label_type": "regression"} if regression else {"num_labels": num_labels})
    return TaskSpec.from_config(cfg)


def one_hot_logits(preds: list[int], num_labels: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(preds), num_labels).float() * 3 - 1


def test_accuracy_f1_and_their_mean() -> None:
    # preds 1,0,1,1 vs labels 1,0,0,1: 3/4 right; TP=2 FP=1 FN=0 -> P=2/3 R=1 F1=0.8
    out = compute_metrics(spec(metrics=["accuracy", "f1"]), one_hot_logits([1, 0, 1, 1], 2), torch.tensor([1, 0, 0, 1]))
    assert out == pytest.approx({"accuracy": 0.75, "f1": 0.8, "acc_and_f1": 0.775})
    assert all(type(v) is float for v in out.values())


def test_matthews_binary() -> None:
    # TP=2 TN=1 FP=1 FN=0: (2*1 - 1*0) / sqrt(3*2*1*2) = 2 / sqrt(12)
    out = compute_metrics(spec(metrics=["matthews"]), one_hot_logits([1, 0, 1, 1], 2), torch.tensor([1, 0, 0, 1]))
    assert out == pytest.approx({"matthews": 2 / math.sqrt(12)})


def test_multiclass_accuracy_is_micro_not_macro() -> None:
    # 3 of 4 right; a macro average over classes would give (1 + 0) / 2 = 0.5
    out = compute_metrics(spec(3), one_hot_logits([0, 0, 0, 1], 3), torch.tensor([0, 0, 0, 2]))
    assert out == pytest.approx({"accuracy": 0.75})


def test_pearson_spearman_and_mean() -> None:
    # x = 1,2,3  y = 1,2,4: r = 3 / sqrt(2 * 42/9); ranks agree -> spearman 1
    r = 3 / math.sqrt(2 * 42 / 9)
    out = compute_metrics(spec(regression=True), torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([1.0, 2.0, 4.0]))
    assert out == pytest.approx({"pearson": r, "spearman": 1.0, "pearson_spearman": (r + 1) / 2}, abs=1e-12)


def test_regression_accepts_flat_scores() -> None:
    out = compute_metrics(spec(regression=True, metrics=["spearman"]), torch.tensor([3.0, 2.0, 1.0]), torch.tensor([1.0, 2.0, 3.0]))
    assert out == pytest.approx({"spearman": -1.0}, abs=1e-12)


def test_predictions_argmax_and_squeeze() -> None:
    assert predictions(spec(3), torch.tensor([[0.1, 0.7, 0.2], [2.0, 0.0, 1.0]])).tolist() == [1, 0]
    assert predictions(spec(regression=True), torch.tensor([[0.5], [1.5]])).tolist() == [0.5, 1.5]


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        predictions(spec(2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="labels"):
        compute_metrics(spec(2), torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[N\] or \[N, 1\]"):
        predictions(spec(regression=True), torch.zeros(4, 2))


def test_metric_names_include_derived_means() -> None:
    assert metric_names(["accuracy", "f1"]) == ("accuracy", "f1", "acc_and_f1")
    assert metric_names(["pearson", "spearman"]) == ("pearson", "spearman", "pearson_spearman")
    assert metric_names(["matthews"]) == ("matthews",)


def test_a_constant_prediction_has_matthews_zero():
    """torchmetrics 1.9 gave a constant predictor 0.0436 on 280/120 labels (its epsilon). Mutation caught: the
    constant-input guard of ``_matthews`` removed (scikit-learn warns and its value is then left to it)."""
    import numpy as np

    from hashee.core.metrics import _matthews

    labels = np.array([0] * 280 + [1] * 120)
    assert _matthews(labels, np.zeros(400, dtype=int)) == 0.0
    assert _matthews(labels, labels) == 1.0


def test_runs_and_the_bootstrap_share_one_metric_definition():
    """What a run records equals what the bootstrap's metric computes on the same predictions, to the last digit.
    Mutation caught: compute_metrics computing any metric its own way (e.g. in float32)."""
    import numpy as np

    from hashee.core.stats import metric

    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 2, 997), rng.integers(0, 2, 997)
    out = compute_metrics(spec(metrics=["accuracy", "f1", "matthews"]), one_hot_logits(preds.tolist(), 2), torch.tensor(labels))
    assert out == {name: metric(name, labels, preds) for name in ("accuracy", "f1", "matthews", "acc_and_f1")}
    scores, gold = rng.normal(size=301).astype(np.float32), rng.normal(size=301).astype(np.float32)  # a model's outputs
    out = compute_metrics(spec(regression=True), torch.tensor(scores), torch.tensor(gold))
    assert out == {name: metric(name, gold.astype(float), scores.astype(float))
                   for name in ("pearson", "spearman", "pearson_spearman")}
