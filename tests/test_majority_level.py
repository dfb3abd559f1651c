"""The majority-level (degenerate) flag of exit heads tests the task's primary metric (issue 34, item 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from hashee.experiments.diagnostics import (bootstrap_f1_p, compare_to_trivial, exit_diagnostics,
                                            permutation_mcc_p)
from hashee.reports.diagnostics import head_rows
from hashee.tasks.spec import load_task_spec

ACCURACY, MCC, F1 = "sst2", "cola", "mrpc"  # primary metrics: accuracy, matthews, f1
TRAIN = [0] * 7 + [1] * 3  # training majority: class 0


def _labels(negatives: int = 280, positives: int = 120) -> torch.Tensor:
    return torch.tensor([0] * negatives + [1] * positives)


def _logits(predicted: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(predicted.long(), 2).float()


def _chance_plus_head() -> torch.Tensor:
    """On 280 negatives / 120 positives: TN 220, FP 60, FN 60, TP 60, accuracy 0.70 (the majority rate), MCC 0.286."""
    return torch.tensor([0] * 220 + [1] * 60 + [0] * 60 + [1] * 60)


def _good_head(labels: torch.Tensor) -> torch.Tensor:
    """95 % right, errors spread over both classes."""
    predicted = labels.clone()
    predicted[::20] = 1 - predicted[::20]
    return predicted


class _Heads:
    """A multi-exit method whose exit heads give fixed logits."""

    def __init__(self, heads: dict[int, torch.Tensor]):
        self.heads = heads

    def exit_head_logits(self, batches):
        return self.heads


def _diagnostics(task: str, heads: dict[int, torch.Tensor], labels: torch.Tensor, **overrides) -> dict:
    evaluated = {"logits": next(iter(heads.values())), "labels": labels}
    return exit_diagnostics(_Heads(heads), load_task_spec(task, overrides), TRAIN,
                            {"val": ([], evaluated), "test": ([], evaluated)})


def test_an_mcc_head_above_chance_at_the_majority_accuracy_is_not_flagged():
    """Fails if the MCC task is tested on accuracy (binomial against the 70 % majority rate gives p ~ 0.5)."""
    labels, head = _labels(), _logits(_chance_plus_head())
    found = _diagnostics(MCC, {3: head}, labels)
    assert found["heads"][0]["val"]["matthews"] == pytest.approx(0.2857, abs=1e-3)
    assert found["degenerate_heads"] == [] and found["heads"][0]["p_value_vs_trivial"] < 0.001
    assert _diagnostics(ACCURACY, {3: head}, labels)["degenerate_heads"] == [3]  # at the majority rate on accuracy


@pytest.mark.parametrize("task", [ACCURACY, MCC, F1])
@pytest.mark.parametrize("constant", [0, 1])
def test_a_constant_head_is_flagged_whatever_the_metric(task, constant):
    """Fails if F1 is compared against the majority class (all-negative, F1 0) instead of all-positive, or if the MCC
    permutation counts shuffles strictly above the observed MCC (every shuffle of a constant head ties: p = 1)."""
    labels = _labels()
    found = _diagnostics(task, {2: _logits(torch.full((400,), constant))}, labels)
    assert found["degenerate_heads"] == [2]
    assert found["heads"][0]["p_value_vs_trivial"] > 0.5


@pytest.mark.parametrize("task", [ACCURACY, MCC, F1])
def test_a_good_head_is_not_flagged_whatever_the_metric(task):
    """Fails if a test's tail is flipped (alternative "less", or the bootstrap counting differences >= 0)."""
    labels = _labels()
    found = _diagnostics(task, {4: _logits(_good_head(labels))}, labels)
    assert found["degenerate_heads"] == [] and found["heads"][0]["p_value_vs_trivial"] < 1e-3


def test_regression_heads_are_still_tested_by_spearman_above_zero():
    """Fails if regression is routed to another test or its tail is flipped (alternative "less": the monotone head's
    p ~ 1); a constant head must still give p = 1."""
    labels = torch.linspace(0, 5, 50)
    spec = load_task_spec("stsb")
    constant = compare_to_trivial(spec, torch.full((50, 1), 2.5), labels, [1.0, 2.0])
    good = compare_to_trivial(spec, (labels + 0.1)[:, None], labels, [1.0, 2.0])
    assert constant.p_value == 1.0 and good.p_value < 1e-6
    assert (constant.choice.test, constant.trivial) == ("spearman", 0.0)


@pytest.mark.parametrize(("task", "overrides", "test", "metric", "trivial"), [
    (ACCURACY, {}, "binomial-accuracy", "accuracy", 0.7),
    (MCC, {}, "permutation-mcc", "matthews", 0.0),
    (F1, {}, "bootstrap-f1", "f1", 240 / 520),  # all-positive: 2 * 120 / (2 * 120 + 280)
    (F1, {"primary_metric": "acc_and_f1"}, "binomial-accuracy", "accuracy", 0.7),  # the fallback
])
def test_the_recorded_test_and_trivial_value_fit_the_primary_metric(task, overrides, test, metric, trivial):
    """Fails if the test is chosen by the first listed metric (MRPC lists accuracy before its primary f1), or if the
    F1 reference is the majority class's F1 (0 here) rather than all-positive's."""
    labels = _labels()
    found = _diagnostics(task, {1: _logits(_chance_plus_head())}, labels, **overrides)
    head = found["heads"][0]
    assert (head["significance_test"], found["significance_test"], found["tested_metric"]) == (test, test, metric)
    assert head["trivial_value"] == pytest.approx(trivial) and found["compared_trivial"]["test"] == pytest.approx(trivial)
    assert {"layer", "p_value_vs_trivial", "degenerate", "val", "test"} <= set(head)  # the keys readers use
    assert found["trivial_predictor"] == "majority class" and set(found["trivial"]["test"]) == set(head["test"])


def test_the_mcc_permutation_p_is_the_exact_hypergeometric_tail():
    """Shuffling labels against a binary head draws its true positives from a hypergeometric law, so the permutation
    p-value must match Fisher's exact one-sided p. Fails if the shuffles are judged on the wrong tail or against the
    majority rate rather than the shuffled agreement."""
    rng = np.random.default_rng(3)
    labels = (rng.random(300) < 0.3).astype(np.int64)
    for flip in (0.40, 0.45, 0.50, 0.55):  # weak heads: exact p 0.20, 0.39, 0.064, 0.98
        head = np.where(rng.random(300) < flip, 1 - labels, labels)
        table = [[int(((head == h) & (labels == y)).sum()) for y in (1, 0)] for h in (1, 0)]
        exact = stats.fisher_exact(table, alternative="greater").pvalue
        assert permutation_mcc_p(head, labels) == pytest.approx(exact, abs=0.03)


def test_the_f1_bootstrap_matches_resampling_the_examples():
    """The multinomial draw of the four cells must agree with resampling examples by index. Fails if the cells are
    mislabelled (e.g. false negatives read as false positives) or the difference's sign is flipped."""
    labels = _labels().numpy()
    predicted = np.array([0] * 200 + [1] * 80 + [0] * 50 + [1] * 70)  # TP 70, FP 80, FN 50: F1 0.519 vs 0.462
    index = np.random.default_rng(7).integers(0, 400, size=(4000, 400))
    p, y = predicted[index], labels[index]
    tp, fp, fn = ((p == 1) & (y == 1)).sum(1), ((p == 1) & (y == 0)).sum(1), ((p == 0) & (y == 1)).sum(1)
    positives = y.sum(1)
    difference = 2 * tp / (2 * tp + fp + fn) - 2 * positives / (positives + 400)
    by_index = (1 + (difference <= 0).sum()) / 4001
    assert 0.02 < by_index < 0.5  # a borderline head: the comparison is informative
    assert bootstrap_f1_p(predicted, labels) == pytest.approx(by_index, abs=0.03)


def test_a_cautious_f1_head_that_beats_chance_but_not_all_positive_is_flagged():
    """Few positives, most right: dependent on the labels (a permutation test would pass it) yet F1 0.32 against
    all-positive's 0.67. Fails if F1 is tested by a label permutation (independence) instead of against all-positive."""
    labels = _labels(200, 200)
    predicted = torch.tensor([0] * 198 + [1] * 2 + [0] * 162 + [1] * 38)
    found = _diagnostics(F1, {5: _logits(predicted)}, labels)
    assert found["heads"][0]["val"]["f1"] == pytest.approx(76 / 240)
    assert found["degenerate_heads"] == [5]
    assert permutation_mcc_p(predicted.numpy(), labels.numpy()) < 1e-3  # the head does depend on the labels


def test_the_report_shows_the_predictor_the_test_compared_against():
    """Fails if the report's trivial column for an F1 task reads the majority class's F1 (0 when the majority is
    negative) instead of the all-positive F1 the head was tested against; results without the new keys still read."""
    labels = _labels()
    found = _diagnostics(F1, {1: _logits(_chance_plus_head())}, labels)
    run = {"task": "mrpc", "method": "pabee", "target": 2.0, "seed": 0, "primary_metric": "f1", "exit_diagnostics": found}
    row = head_rows([run])[0]
    assert (row["trivial"], row["trivial_name"]) == (pytest.approx(240 / 520), "all-positive predictor")
    legacy = {k: found[k] for k in ("trivial_predictor", "trivial", "significance", "heads", "degenerate_heads")}
    row = head_rows([{**run, "exit_diagnostics": legacy}])[0]
    assert (row["trivial"], row["trivial_name"]) == (0.0, "majority class")
