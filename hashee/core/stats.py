"""Statistics that tell a difference from noise: bootstrap intervals, paired comparisons, Pareto scores.

Everything works on per-example outputs (``predictions.npz`` of a run: labels and predictions on
the reported split) and resamples *examples*, seeded, with ``scipy.stats.bootstrap``:

- :func:`metric_interval`: 95 % percentile interval of one run's primary metric;
- paired differences at equal realized speed-up live in :mod:`hashee.core.equal_speedup` (two-level bootstrap);
- :func:`pareto_score`: mean vertical distance, in points, between a method's quality vs FLOPs
  speed-up curve and a reference curve (static truncation), over the speed-up range both cover,
  by linear interpolation; its interval resamples the examples under every point of both curves.
- :func:`seed_interval`: the t interval of a mean over seeds.

Metrics are :mod:`hashee.core.metrics`' (the definitions the runs record), NumPy functions fast enough for
thousands of resamples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy import stats

from hashee.core.metrics import metric

CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 0


def load_in_split_order(path: str, keys: Sequence[str]) -> list[np.ndarray]:
    """Arrays ``keys`` of a run's ``predictions.npz``, its examples put in split order (``index`` sorted)."""
    with np.load(path) as data:
        order = np.argsort(data["index"], kind="stable")
        return [data[key][order] for key in keys]


@dataclass(frozen=True)
class Outputs:
    """One run's per-example outputs on a split, in split order (``index`` sorted)."""

    labels: np.ndarray
    predicted: np.ndarray

    @classmethod
    def load(cls, path: str) -> "Outputs":
        """Read a run's ``predictions.npz`` and put its examples in split order."""
        return cls(*load_in_split_order(path, ("label", "prediction")))


def _bootstrap(statistic: Callable[[np.ndarray], float], count: int, seed: int, resamples: int) -> Any:
    """scipy's percentile bootstrap over example indices ``0..count-1`` (one resample serves every run)."""
    return stats.bootstrap((np.arange(count),), statistic, vectorized=False, paired=True, n_resamples=resamples,
                           confidence_level=CONFIDENCE, method="percentile", random_state=np.random.default_rng(seed))


def metric_interval(name: str, outputs: Outputs, seed: int = SEED, resamples: int = RESAMPLES) -> tuple[float, float]:
    """95 % bootstrap interval of a run's metric over its examples."""
    result = _bootstrap(lambda i: metric(name, outputs.labels[i], outputs.predicted[i]), len(outputs.labels), seed,
                        resamples)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def seed_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """95 % t interval of the mean over seeds (None with fewer than 2 seeds)."""
    if len(values) < 2:
        return None
    mean, sem = float(np.mean(values)), float(stats.sem(values))
    if sem == 0:
        return mean, mean
    low, high = stats.t.interval(CONFIDENCE, len(values) - 1, loc=mean, scale=sem)
    return float(low), float(high)


def _check_same_examples(runs: Sequence[Outputs]) -> None:
    for run in runs[1:]:
        if len(run.labels) != len(runs[0].labels) or not np.array_equal(run.labels, runs[0].labels):
            raise ValueError("paired statistics need runs on the same examples (same split, same labels)")


Curve = Sequence[tuple[float, Sequence[Outputs]]]  # (FLOPs speed-up, the runs of that point: one per seed)


def _curve_values(name: str, curve: Curve, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(speed-ups, metric at each point: mean over its runs on examples ``i``), sorted by speed-up."""
    points = sorted(curve, key=lambda p: p[0])
    xs = np.array([x for x, _ in points], dtype=float)
    ys = np.array([np.mean([metric(name, r.labels[i], r.predicted[i]) for r in runs]) for _, runs in points])
    return xs, ys


def curve_gap(xs: np.ndarray, ys: np.ndarray, ref_xs: np.ndarray, ref_ys: np.ndarray, grid: int = 101) -> float | None:
    """Mean of (curve - reference) over the speed-up range both cover, by linear interpolation (None: no overlap)."""
    low, high = max(xs.min(), ref_xs.min()), min(xs.max(), ref_xs.max())
    if not high > low:
        return None
    at = np.linspace(low, high, grid)
    return float(np.mean(np.interp(at, xs, ys) - np.interp(at, ref_xs, ref_ys)))


def pareto_score(name: str, curve: Curve, reference: Curve, seed: int = SEED,
                 resamples: int = RESAMPLES) -> tuple[float, float, float] | None:
    """Mean gap in points (x100) between ``curve`` and ``reference`` with its 95 % bootstrap interval.

    None when the curves share no speed-up range (a single point, or disjoint ranges)."""
    runs = [r for _, rs in [*curve, *reference] for r in rs]
    _check_same_examples(runs)

    def statistic(i: np.ndarray) -> float:
        gap = curve_gap(*_curve_values(name, curve, i), *_curve_values(name, reference, i))
        return 100.0 * (gap if gap is not None else math.nan)

    observed = statistic(np.arange(len(runs[0].labels)))
    if math.isnan(observed):
        return None
    result = _bootstrap(statistic, len(runs[0].labels), seed, resamples)
    return observed, float(result.confidence_interval.low), float(result.confidence_interval.high)


def pareto_front(points: Mapping[str, Sequence[tuple[float, float]]]) -> list[tuple[str, float, float]]:
    """The points (label, speed-up, quality) that no other point beats in both speed-up and quality."""
    flat = [(label, x, y) for label, pts in points.items() for x, y in pts]
    return sorted((p for p in flat if not any(q[1] >= p[1] and q[2] >= p[2] and (q[1] > p[1] or q[2] > p[2])
                                              for q in flat)), key=lambda p: p[1])


@dataclass(frozen=True)
class MeanInterval:
    """A mean over seeds of per-seed example means, its 95 % interval and the number of seeds."""

    mean: float
    low: float
    high: float
    seeds: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def seeds_and_examples_interval(groups: Sequence[np.ndarray], seed: int = SEED,
                                resamples: int = RESAMPLES) -> MeanInterval:
    """Two-level percentile bootstrap of the mean over seeds of each seed's mean over its examples: every draw
    resamples the seeds with replacement, then each drawn seed's examples (``groups[s]``: one value per example,
    e.g. a paired difference). One seed: an example bootstrap."""
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("seeds_and_examples_interval needs at least one seed, each with examples")
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(g, dtype=float) for g in groups]
    draws = np.empty(resamples)
    picks = rng.integers(0, len(arrays), size=(resamples, len(arrays)))
    for r in range(resamples):
        draws[r] = np.mean([arrays[s][rng.integers(0, len(arrays[s]), len(arrays[s]))].mean() for s in picks[r]])
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return MeanInterval(float(np.mean([a.mean() for a in arrays])), float(low), float(high), len(arrays))
