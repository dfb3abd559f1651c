"""Per-exit diagnostics: how good each exit head is on its own, and whether it beats a trivial predictor.

For every head of a run (the single head of the full model, static-k and HashEE; each layer's head of
the instance-level methods) this computes the task's metrics when *every* example exits there, on
the validation split and on the reported split. A head is flagged ``degenerate`` when, on the
validation split, its value of the task's *primary* metric is not significantly better than the
trivial predictor's (one-sided test at 5 %, chosen to fit the metric; :func:`chosen_test`):

- ``accuracy`` (``binomial-accuracy``): against the rate of the training split's majority class
  (exact binomial test, ``scipy.stats.binomtest``);
- ``matthews`` (``permutation-mcc``): against 0, the MCC of any constant predictor, by a seeded
  permutation test (labels shuffled against the predictions);
- ``f1`` (``bootstrap-f1``, binary, positive class 1): against the F1 of the all-positive predictor,
  by a seeded paired bootstrap over examples of the difference of the two F1s;
- regression, whatever the primary correlation (``spearman``): the trivial predictor is the training
  mean, a constant with no rank information, so the test is whether the head's Spearman correlation
  with the labels is above 0 (``spearmanr``, one-sided). A constant head gives no correlation and p = 1;
- any other classification primary metric (``acc_and_f1``) falls back to the binomial accuracy test.

Each head's entry records the test (``significance_test``), the trivial value it was compared against
(``trivial_value``) and the p-value (``p_value_vs_trivial``); the result records the tested metric, the
predictor compared against and its value on every split (``compared_trivial``). ``trivial`` keeps the
majority class's (training mean's) metrics. So nobody again reads a degenerate head (e.g. one that
predicts one class) as a property of the method, nor flags a head that beats chance on an imbalanced task.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from scipy import stats
from sklearn.metrics import f1_score, matthews_corrcoef

from hashee.tasks.metrics import compute_metrics, predictions
from hashee.tasks.spec import TaskSpec

log = logging.getLogger(__name__)
SIGNIFICANCE = 0.05
RESAMPLES = 2000  # permutations (MCC) or bootstrap resamples (F1)
SEED = 0
CHUNK = 100  # permutations shuffled at once


class Choice(NamedTuple):
    """The test that fits a primary metric: its name, the metric it tests and the predictor it compares against."""

    test: str
    metric: str
    predictor: str


BINOMIAL = Choice("binomial-accuracy", "accuracy", "majority class")
TESTS = {"accuracy": BINOMIAL,
         "matthews": Choice("permutation-mcc", "matthews", "constant predictor (MCC 0)"),
         "f1": Choice("bootstrap-f1", "f1", "all-positive predictor")}
REGRESSION = Choice("spearman", "spearman", "training mean")


@dataclass(frozen=True)
class Comparison:
    """A head against the trivial predictor on the tested metric, with the one-sided p-value."""

    choice: Choice
    value: float
    trivial: float
    p_value: float


def chosen_test(spec: TaskSpec) -> Choice:
    """The test for the task's primary metric (other classification metrics: the binomial accuracy test)."""
    return REGRESSION if spec.is_regression else TESTS.get(spec.primary_metric, BINOMIAL)


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


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Binary F1 ``2TP / (2TP + FP + FN)``, 0 where nothing is predicted or positive."""
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def all_positive_f1(labels: np.ndarray) -> float:
    """F1 of the predictor that says class 1 for every example."""
    positives = int((labels == 1).sum())
    return float(f1_from_counts(np.array(positives), np.array(labels.size - positives), np.array(0)))


def trivial_value(choice: Choice, labels: np.ndarray, majority: int) -> float:
    """The compared predictor's value of the tested metric on these labels."""
    if choice.metric == "accuracy":
        return float((labels == majority).mean())
    return all_positive_f1(labels) if choice.metric == "f1" else 0.0


def head_value(choice: Choice, predicted: np.ndarray, labels: np.ndarray) -> float:
    """The head's value of the tested metric (an undefined correlation is 0)."""
    if choice.metric == "accuracy":
        return float((predicted == labels).mean())
    if choice.metric == "matthews":
        return float(matthews_corrcoef(labels, predicted))
    if choice.metric == "f1":
        return float(f1_score(labels, predicted, pos_label=1, zero_division=0))
    if np.std(predicted) == 0 or np.std(labels) == 0:
        return 0.0
    return float(stats.spearmanr(predicted, labels).statistic)


def binomial_accuracy_p(predicted: np.ndarray, labels: np.ndarray, majority: int) -> float:
    """Exact one-sided binomial p-value that the accuracy is above the majority class's rate."""
    rate = float((labels == majority).mean())
    correct = int((predicted == labels).sum())
    return float(stats.binomtest(correct, int(labels.size), rate, alternative="greater").pvalue)


def permutation_mcc_p(predicted: np.ndarray, labels: np.ndarray,
                      permutations: int = RESAMPLES, seed: int = SEED) -> float:
    """One-sided permutation p-value that MCC > 0 (labels shuffled against the predictions):
    p = (1 + #{shuffles with MCC >= observed}) / (1 + permutations).

    Shuffling the labels keeps both marginals, and with them fixed MCC rises strictly with the number of
    correct predictions, so each shuffle is judged on that count. A constant head (or constant labels) has
    MCC 0 under every shuffle, all ties: p = 1.
    """
    observed, rng, at_least = int((predicted == labels).sum()), np.random.default_rng(seed), 0
    for start in range(0, permutations, CHUNK):
        shuffled = rng.permuted(np.tile(labels, (min(CHUNK, permutations - start), 1)), axis=1)
        at_least += int(((shuffled == predicted).sum(axis=1) >= observed).sum())
    return (1 + at_least) / (1 + permutations)


def bootstrap_f1_p(predicted: np.ndarray, labels: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> float:
    """One-sided paired-bootstrap p-value that F1(head) > F1(all-positive):
    p = (1 + #{resamples with F1(head) - F1(all-positive) <= 0}) / (1 + resamples).

    A bootstrap rather than a permutation test: the null is "no better than the all-positive predictor", not
    "independent of the labels", which a cautious head (few positives, most of them right) rejects with an F1
    below all-positive's. Both F1s depend only on the counts of the four (prediction, label) cells, so
    resampling the examples is drawing those counts from a multinomial with the observed cell rates.
    A constant head is never above all-positive: p = 1.
    """
    cells = np.bincount(2 * (predicted == 1) + (labels == 1), minlength=4)
    counts = np.random.default_rng(seed).multinomial(labels.size, cells / labels.size, size=resamples)
    tn, fn, fp, tp = counts.T
    difference = f1_from_counts(tp, fp, fn) - f1_from_counts(tp + fn, fp + tn, np.zeros_like(tp))
    return (1 + int((difference <= 0).sum())) / (1 + resamples)


def spearman_p(predicted: np.ndarray, labels: np.ndarray) -> float:
    """One-sided p-value that the Spearman correlation is above 0 (a constant head or labels: 1)."""
    if np.std(predicted) == 0 or np.std(labels) == 0:
        return 1.0
    p = stats.spearmanr(predicted, labels, alternative="greater").pvalue
    return 1.0 if math.isnan(p) else float(p)


def compare_to_trivial(spec: TaskSpec, logits: torch.Tensor, labels: torch.Tensor,
                       train_labels: Sequence[float]) -> Comparison:
    """The head against the trivial predictor on these examples, by the test that fits the primary metric."""
    choice = chosen_test(spec)
    predicted = predictions(spec, logits.float()).numpy()
    target = labels.reshape(-1).float().numpy() if spec.is_regression else labels.reshape(-1).long().numpy()
    majority = 0 if spec.is_regression else majority_class(train_labels)
    p = {"binomial-accuracy": lambda: binomial_accuracy_p(predicted, target, majority),
         "permutation-mcc": lambda: permutation_mcc_p(predicted, target),
         "bootstrap-f1": lambda: bootstrap_f1_p(predicted, target),
         "spearman": lambda: spearman_p(predicted, target)}[choice.test]()
    return Comparison(choice, head_value(choice, predicted, target), trivial_value(choice, target, majority), p)


def p_value_above_trivial(spec: TaskSpec, logits: torch.Tensor, labels: torch.Tensor, train_labels: Sequence[float]) -> float:
    """One-sided p-value that the head beats the trivial predictor on these examples (see the module doc)."""
    return compare_to_trivial(spec, logits, labels, train_labels).p_value


def head_logits(module: Any, batches: list[Mapping[str, torch.Tensor]], evaluated: torch.Tensor) -> dict[int, torch.Tensor]:
    """``{layer: logits}`` of every exit head; a single-head method's are its evaluated logits."""
    per_head = module.exit_head_logits(batches)
    return per_head if per_head is not None else {int(module.head_layer): evaluated}


def head_entry(spec: TaskSpec, layer: int, comparison: Comparison,
               per_split: Mapping[str, tuple[dict[int, torch.Tensor], torch.Tensor]]) -> dict[str, Any]:
    """One head's diagnostics: the test on val and its metrics on every split."""
    p = comparison.p_value
    entry: dict[str, Any] = {"layer": layer, "p_value_vs_trivial": p, "degenerate": bool(p >= SIGNIFICANCE),
                             "significance_test": comparison.choice.test, "trivial_value": comparison.trivial}
    for name, (logits, labels) in per_split.items():
        entry[name] = compute_metrics(spec, logits[layer], labels)
    return entry


def exit_diagnostics(module: Any, spec: TaskSpec, train_labels: Sequence[float],
                     splits: Mapping[str, tuple[list[Mapping[str, torch.Tensor]], Mapping[str, Any]]]) -> dict[str, Any]:
    """Per-head metrics on each split (``{name: (batches, evaluated)}``, ``val`` first) and the degeneracy test on val."""
    per_split = {name: (head_logits(module, batches, evaluated["logits"]), evaluated["labels"])
                 for name, (batches, evaluated) in splits.items()}
    val_heads, val_labels = per_split["val"]
    comparisons = {layer: compare_to_trivial(spec, val_heads[layer], val_labels, train_labels)
                   for layer in sorted(val_heads)}
    heads = [head_entry(spec, layer, comparison, per_split) for layer, comparison in comparisons.items()]
    choice = chosen_test(spec)
    for layer, comparison in comparisons.items():
        if comparison.p_value >= SIGNIFICANCE:
            log.warning("exit head at layer %d is not significantly better than the %s on validation "
                        "(%s %.4f vs %.4f, %s one-sided p = %.3g)", layer, choice.predictor, choice.metric,
                        comparison.value, comparison.trivial, choice.test, comparison.p_value)
    return {"trivial_predictor": trivial_name(spec),
            "trivial": {name: trivial_metrics(spec, train_labels, labels) for name, (_, labels) in per_split.items()},
            "significance": SIGNIFICANCE, "significance_test": choice.test, "tested_metric": choice.metric,
            "compared_predictor": choice.predictor,
            "compared_trivial": {name: compared_trivial(spec, train_labels, labels)
                                 for name, (_, labels) in per_split.items()},
            "heads": heads, "degenerate_heads": [h["layer"] for h in heads if h["degenerate"]]}


def compared_trivial(spec: TaskSpec, train_labels: Sequence[float], labels: torch.Tensor) -> float:
    """The compared predictor's value of the tested metric on one split's labels."""
    if spec.is_regression:
        return 0.0
    return trivial_value(chosen_test(spec), labels.reshape(-1).long().numpy(), majority_class(train_labels))


def trivial_metrics(spec: TaskSpec, train_labels: Sequence[float], labels: torch.Tensor) -> dict[str, float]:
    """The trivial predictor's metrics; a constant's correlations are undefined and stated as 0."""
    metrics = compute_metrics(spec, trivial_logits(spec, train_labels, int(labels.numel())), labels)
    return {k: (0.0 if math.isnan(v) else v) for k, v in metrics.items()}


def trivial_name(spec: TaskSpec) -> str:
    return "training mean" if spec.is_regression else "majority class"
