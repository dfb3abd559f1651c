"""Methods compared at the same *realized* speed-up: a method is a curve, read off between its operating points.

A method's operating points (one per target it ran at, per seed) realize FLOPs speed-ups that differ from their
nominal targets and from one method to the next, so two rows at the same nominal target compare a slower method
with a faster one. Here each method is read at a common reference speed-up ``S`` (docs/methods.md, "Comparing at
equal speed-up"):

- **Per-example mixing** (:func:`mix_at`). Between the two operating points ``a`` and ``b`` (of one seed) whose
  speed-ups bracket ``S``, every example follows ``b`` with probability ``w`` and ``a`` otherwise, with ``w`` set
  so that the expected FLOPs on the reported split are exactly ``full / S``. The expected metric is computed from
  each example's expected confusion counts, so it stays per-example and paired with every other method on the
  same examples. Accuracy, binary F1 and Matthews correlation are exact this way (:data:`MIXABLE`).
- **Linear interpolation** of the metric between the two points (same ``w``) for metrics that are not a function
  of confusion counts (correlations): the fallback, marked ``interpolated``.
- A reference outside a seed's curve is **not reached** for that seed, never extrapolated.

Differences are bootstrapped at two levels (:func:`compare`): every resample draws the examples (one draw shared
by both methods: paired) and, independently for each method, its seeds with replacement, so seed variance is in
the interval. With seeds that agree it matches the example-only bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from hashee.core.stats import CONFIDENCE, load_in_split_order, metric

MIXABLE = ("accuracy", "f1", "matthews", "acc_and_f1")  # functions of (expected) confusion counts
RESAMPLES = 2000
SEED = 0


@dataclass(frozen=True)
class Point:
    """One operating point of one seed: per-example labels, predictions and FLOPs on the reported split."""

    labels: np.ndarray
    predicted: np.ndarray
    flops: np.ndarray
    flops_full: np.ndarray

    @classmethod
    def load(cls, path: str) -> "Point":
        """A run's ``predictions.npz``, its examples in split order."""
        labels, predicted, flops, flops_full = load_in_split_order(path, ("label", "prediction", "flops", "flops_full"))
        return cls(labels, predicted, flops.astype(float), flops_full.astype(float))

    @property
    def speedup(self) -> float:
        return float(self.flops_full.sum() / self.flops.sum())


@dataclass(frozen=True)
class Mix:
    """Example-wise mixing of two points: each example follows ``b`` with probability ``weight``, else ``a``."""

    a: Point
    b: Point
    weight: float

    @property
    def speedup(self) -> float:
        expected = (1 - self.weight) * self.a.flops.sum() + self.weight * self.b.flops.sum()
        return float(self.a.flops_full.sum() / expected)


AT_POINT = 0.005  # a point within 0.5 % of the reference counts as at it (seeds' hashes differ slightly)


def mix_at(points: Sequence[Point], reference: float, at_point: float = AT_POINT) -> Mix | None:
    """The mixing of the two points (of one seed) that bracket ``reference`` that realizes it exactly, or the
    point within ``at_point`` (relative) of it; None when ``reference`` is outside the points' speed-ups (not
    reached)."""
    ordered = sorted(points, key=lambda p: p.speedup)
    near = [p for p in ordered if abs(p.speedup - reference) <= at_point * reference]
    if near:
        closest = min(near, key=lambda p: abs(p.speedup - reference))
        return Mix(closest, closest, 0.0)
    for a, b in zip(ordered, ordered[1:]):
        if a.speedup <= reference <= b.speedup:
            target_flops = a.flops_full.sum() / reference
            weight = (a.flops.sum() - target_flops) / (a.flops.sum() - b.flops.sum())
            return Mix(a, b, float(min(1.0, max(0.0, weight))))
    return None


def _confusion(point: Point) -> np.ndarray:
    """Per-example one-hot of (true positive, false positive, false negative, true negative) ``[N, 4]``, for
    binary labels; (correct, wrong) ``[N, 2]`` otherwise."""
    y, p = point.labels.astype(int), point.predicted.astype(int)
    if set(np.unique(y)) | set(np.unique(p)) <= {0, 1}:
        return np.stack([(p == 1) & (y == 1), (p == 1) & (y == 0), (p == 0) & (y == 1), (p == 0) & (y == 0)], 1).astype(float)
    return np.stack([p == y, p != y], 1).astype(float)


def metric_from_counts(name: str, counts: np.ndarray) -> np.ndarray:
    """``name`` from (expected) confusion counts ``[..., 4]`` (binary) or ``[..., 2]`` (correct, wrong: accuracy)."""
    if counts.shape[-1] == 2:
        if name != "accuracy":
            raise ValueError(f"{name} from correct/wrong counts: only accuracy")
        return counts[..., 0] / counts.sum(-1)
    tp, fp, fn, tn = (counts[..., k] for k in range(4))
    accuracy = (tp + tn) / counts.sum(-1)
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0)
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = np.divide(tp * tn - fp * fn, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return {"accuracy": accuracy, "f1": f1, "matthews": mcc, "acc_and_f1": (accuracy + f1) / 2}[name]


def mixed(name: str) -> bool:
    """Whether ``name`` is read off by exact per-example mixing (else: interpolated)."""
    return name in MIXABLE


class Resamples:
    """Example resamples: index arrays ``idx[R, N]`` and how often each example is drawn, ``weights[R, N]``."""

    def __init__(self, idx: np.ndarray) -> None:
        self.idx = np.atleast_2d(idx)
        rows, count = self.idx.shape
        offsets = (np.arange(rows)[:, None] * count + self.idx).ravel()
        self.weights = np.bincount(offsets, minlength=rows * count).reshape(rows, count).astype(float)

    @classmethod
    def everything(cls, count: int) -> "Resamples":
        return cls(np.arange(count)[None, :])


def scorer(name: str, mix: Mix) -> Callable[[Resamples], np.ndarray]:
    """The mixed metric on example resamples -> ``[R]``."""
    if mixed(name):
        expected = (1 - mix.weight) * _confusion(mix.a) + mix.weight * _confusion(mix.b)
        return lambda draws: metric_from_counts(name, draws.weights @ expected)

    def interpolated(draws: Resamples) -> np.ndarray:
        def on(point: Point) -> np.ndarray:
            return np.array([metric(name, point.labels[i], point.predicted[i]) for i in draws.idx])
        return (1 - mix.weight) * on(mix.a) + mix.weight * on(mix.b)
    return interpolated


@dataclass(frozen=True)
class Comparison:
    """metric(A) - metric(B) at one speed-up (mean over each method's seeds), its 95 % interval and p-value."""

    difference: float
    low: float
    high: float
    p_value: float
    seeds: tuple[int, int]

    @property
    def tie(self) -> bool:
        return self.low <= 0 <= self.high


def _seed_means(scores: np.ndarray, picks: np.ndarray | None) -> np.ndarray:
    """Mean over seeds per resample: ``scores[S, R]``; ``picks[R, S]`` resampled seeds (None: every seed)."""
    if picks is None:
        return scores.mean(axis=0)
    return scores[picks.T, np.arange(scores.shape[1])].mean(axis=0)


def compare(name: str, a: Sequence[Mix], b: Sequence[Mix], resample_seeds: bool = True, seed: int = SEED,
            resamples: int = RESAMPLES) -> Comparison:
    """Two-level bootstrap of mean-over-seeds metric(A) - metric(B): examples resampled once per draw for both
    (paired), each method's seeds resampled with replacement (``resample_seeds``; False: examples only)."""
    if not a or not b:
        raise ValueError("compare needs at least one seed of each method")
    count = len(a[0].a.labels)
    if any(len(m.a.labels) != count or not np.array_equal(m.a.labels, a[0].a.labels) for m in [*a, *b]):
        raise ValueError("equal-speed-up comparisons need runs on the same examples")
    scorers_a, scorers_b = [scorer(name, m) for m in a], [scorer(name, m) for m in b]
    everything = Resamples.everything(count)
    observed = float(np.mean([s(everything)[0] for s in scorers_a]) - np.mean([s(everything)[0] for s in scorers_b]))
    rng = np.random.default_rng(seed)
    idx = Resamples(rng.integers(0, count, size=(resamples, count)))
    picks_a = rng.integers(0, len(a), size=(resamples, len(a))) if resample_seeds else None
    picks_b = rng.integers(0, len(b), size=(resamples, len(b))) if resample_seeds else None
    draws = (_seed_means(np.stack([s(idx) for s in scorers_a]), picks_a)
             - _seed_means(np.stack([s(idx) for s in scorers_b]), picks_b))
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    p_value = float(np.mean(np.abs(draws - observed) >= abs(observed) - 1e-12))
    return Comparison(observed, float(low), float(high), p_value, (len(a), len(b)))


def value(name: str, mixes: Sequence[Mix]) -> float:
    """A method's metric at the speed-up of ``mixes``: the mean over its seeds on every example."""
    everything = Resamples.everything(len(mixes[0].a.labels))
    return float(np.mean([scorer(name, m)(everything)[0] for m in mixes]))
