"""Comparisons at equal realized speed-up: exact per-example mixing, the two-level bootstrap, HashEE's family choice."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, matthews_corrcoef

from hashee.core.equal_speedup import Mix, Point, compare, metric_from_counts, mix_at, value
from hashee.core.stats import CONFIDENCE
from hashee.reports.equal_speedup import headline_rows
from hashee.reports.family import chosen_rows, family_table

N = 400
LABELS = np.random.default_rng(0).integers(0, 2, N)


def _point(right: np.ndarray, flops: np.ndarray | float, labels: np.ndarray = LABELS) -> Point:
    """A point right on the examples ``right`` (mask) with per-example FLOPs ``flops``; the full model costs 12."""
    flops = np.broadcast_to(np.asarray(flops, dtype=float), labels.shape).copy()
    return Point(labels, np.where(right, labels, 1 - labels), flops, np.full(labels.shape, 12.0))


def _fixed(right: np.ndarray, labels: np.ndarray = LABELS) -> Mix:
    point = _point(right, 6.0, labels)
    return Mix(point, point, 0.0)


def test_mixing_gives_exactly_the_reference_speedup_and_the_expected_metric():
    """Two points with uneven per-example FLOPs (2x and 3x on average): every reference between them is realized
    exactly, and the metric is the FLOPs-weighted expectation of the two points' per-example correctness.

    Mutation caught: a mixing weight from the speed-ups' linear interpolation instead of the FLOPs totals (the
    realized speed-up is then off the reference: 2.4 instead of 2.5)."""
    rng = np.random.default_rng(1)
    slow = _point(rng.random(N) < 0.9, rng.uniform(4, 8, N) * 6 / rng.uniform(4, 8, N).mean())
    fast = _point(rng.random(N) < 0.7, rng.uniform(2, 6, N))
    for reference in (slow.speedup, 2.5, 2.8, fast.speedup):
        mix = mix_at([fast, slow], reference)
        assert mix.speedup == pytest.approx(reference, rel=1e-12)
        expected = (1 - mix.weight) * np.mean(mix.a.predicted == LABELS) + mix.weight * np.mean(mix.b.predicted == LABELS)
        assert value("accuracy", [mix]) == pytest.approx(expected)
    assert mix_at([fast, slow], slow.speedup * 0.9) is None  # below the curve: not reached
    assert mix_at([fast, slow], fast.speedup * 1.1) is None  # above it: not reached, never extrapolated
    assert mix_at([slow], slow.speedup * 1.004).a is slow  # within 0.5 %: at the point


def test_f1_and_matthews_from_counts_match_sklearn():
    rng = np.random.default_rng(2)
    predicted = np.where(rng.random(N) < 0.8, LABELS, 1 - LABELS)
    mix = Mix(Point(LABELS, predicted, np.ones(N), np.ones(N)), Point(LABELS, predicted, np.ones(N), np.ones(N)), 0.0)
    assert value("f1", [mix]) == pytest.approx(f1_score(LABELS, predicted))
    assert value("matthews", [mix]) == pytest.approx(matthews_corrcoef(LABELS, predicted))
    assert metric_from_counts("accuracy", np.array([3.0, 1.0])) == pytest.approx(0.75)


def test_two_level_interval_is_wider_when_seeds_disagree_and_matches_when_they_agree():
    """Method A has three seeds; B one. Agreeing seeds (the same predictions): the two-level interval matches the
    example-only one. Disagreeing seeds (80 %, 90 %, 70 % right): it is wider, by the seeds' spread.

    Mutation caught: seeds not resampled in ``compare`` (the two-level interval then equals the example-only one
    when seeds disagree)."""
    rng = np.random.default_rng(3)
    b = [_fixed(rng.random(N) < 0.75)]
    same = _fixed(rng.random(N) < 0.8)
    agree_two, agree_one = compare("accuracy", [same] * 3, b), compare("accuracy", [same] * 3, b, resample_seeds=False)
    assert agree_two.high - agree_two.low == pytest.approx(agree_one.high - agree_one.low, rel=1e-9)
    disagree = [_fixed(rng.random(N) < rate) for rate in (0.8, 0.9, 0.7)]
    two, one = compare("accuracy", disagree, b), compare("accuracy", disagree, b, resample_seeds=False)
    assert two.difference == one.difference
    assert (two.high - two.low) > 1.5 * (one.high - one.low)


def test_identical_predictions_differ_by_zero_with_p_one():
    run = _fixed(np.arange(N) < 300)
    result = compare("accuracy", [run, run], [run, run], resamples=200)
    assert result.difference == 0.0 and result.low <= 0.0 <= result.high and result.tie and result.p_value == 1.0


def test_a_clear_difference_is_significant_and_its_interval_excludes_zero():
    result = compare("accuracy", [_fixed(np.arange(N) < 360)], [_fixed(np.arange(N) < 280)], resamples=300)
    assert result.difference == pytest.approx(0.2)
    assert result.low > 0.1 and result.p_value < 0.01 and not result.tie


def _unpaired_interval(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[float, float]:
    result = stats.bootstrap((correct_a, correct_b), lambda x, y, axis: x.mean(axis) - y.mean(axis), paired=False,
                             n_resamples=1000, confidence_level=CONFIDENCE, method="percentile",
                             random_state=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def test_only_pairing_finds_a_small_consistent_difference_significant():
    """Shared per-example difficulty: both right on the same 1560 of 2000 examples, wrong on the same 405; A alone
    right on 30, B alone on 5: A is 1.25 points better on nearly every example where they differ. Paired, the
    interval excludes 0; resampled independently (unpaired), it does not.

    Mutation caught: ``compare`` drawing separate example resamples for A and B (unpaired)."""
    n, rng = 2000, np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    kind = np.array(["both"] * 1560 + ["a"] * 30 + ["b"] * 5 + ["neither"] * 405)[rng.permutation(n)]
    a, b = np.isin(kind, ["both", "a"]), np.isin(kind, ["both", "b"])
    paired = compare("accuracy", [_fixed(a, labels)], [_fixed(b, labels)], resample_seeds=False)
    assert paired.difference == pytest.approx(0.0125) and paired.low > 0 and paired.p_value < 0.01
    low, high = _unpaired_interval(a.astype(float), b.astype(float))
    assert low < 0 < high


def test_the_headline_names_the_best_method_ties_and_not_reached():
    better, worse = np.arange(N) < 360, np.arange(N) < 200
    reached = {"deebert": [_fixed(better)], "static": [_fixed(better)], "hashee[frequency]": [_fixed(worse)]}
    rows = {r["method"]: r for r in headline_rows("t", "accuracy", 2.0, reached, [*reached, "pabee"])}
    assert rows["pabee"]["reached"] is False
    best = next(r for r in rows.values() if r.get("best"))
    assert best["method"] in ("deebert", "static") and best["value"] == pytest.approx(0.9)
    other = rows["static" if best["method"] == "deebert" else "deebert"]
    assert other["difference"] == 0.0 and other["tie"]
    assert rows["hashee[frequency]"]["difference"] == pytest.approx(-40.0) and not rows["hashee[frequency]"]["tie"]


def _member(depth: int | None, val: float, test: float, seed: int = 0) -> dict:
    label = "hashee[frequency]" if depth is None else f"hashee[frequency; depth={depth}]"
    return {"task": "t", "method": label, "target": 2.0, "seed": seed, "source": "run", "val_primary": val,
            "primary": test, "flops_speedup": 2.0, "depth": depth or 6, "run_dir": f"/runs/{label}/{seed}"}


def _cls(val: float, test: float, seed: int = 0) -> dict:
    return {**_member(None, val, test, seed), "method": "hashee[frequency; pooling=cls]", "run_dir": f"/runs/cls/{seed}"}


def test_hashees_configuration_is_chosen_on_validation_never_on_the_reported_split():
    """Depth 4 is best on validation, [CLS] pooling on the reported split: the chosen member is depth 4 (pooling
    variants are members of the family too).

    Mutation caught: ``choose`` keyed on ``primary`` (the reported split) picks depth 6."""
    rows = [_member(None, 0.86, 0.83), _member(4, 0.88, 0.80), _member(3, 0.85, 0.82), _cls(0.87, 0.85),
            _member(None, 0.87, 0.81, seed=1), _member(3, 0.84, 0.84, seed=1)]
    chosen = {r["seed"]: r for r in chosen_rows(rows)}
    assert chosen[0]["method"] == "hashee[frequency; chosen]" and chosen[0]["chosen_from"] == "hashee[frequency; depth=4]"
    assert chosen[0]["run_dir"] == "/runs/hashee[frequency; depth=4]/0"
    assert chosen[1]["chosen_from"] == "hashee[frequency]"
    table = family_table(rows)
    assert [r["member"] for r in table if r["chosen"]] == ["hashee[frequency; depth=4]", "hashee[frequency]"]
    assert len(table) == 6


def test_the_claim_compares_every_hashee_variant_with_the_best_other_method():
    """Mutation caught: the claim picking HashEE's best variant by its reported-split value (one row instead of
    one per variant), or comparing against the worst baseline."""
    from hashee.reports.equal_speedup import claim_rows, claim_word

    good, fair, poor = np.arange(N) < 380, np.arange(N) < 300, np.arange(N) < 200
    reached = {"hashee[frequency]": [_fixed(poor)] * 2, "hashee[frequency; chosen]": [_fixed(good)] * 2,
               "static": [_fixed(fair)] * 2, "pabee": [_fixed(poor)] * 2}
    focal = {"hashee[frequency]", "hashee[frequency; chosen]"}  # the rows of the method whose contract is focal
    rows = {r["hashee"]: r for r in claim_rows("t", "accuracy", 2.0, reached, focal)}
    assert set(rows) == {"hashee[frequency]", "hashee[frequency; chosen]"}
    assert all(r["versus"] == "static" for r in rows.values())
    assert claim_word(rows["hashee[frequency; chosen]"]) == "holds"
    assert claim_word(rows["hashee[frequency]"]) == "does not hold"


def test_a_chosen_variant_is_read_with_every_seed_at_its_own_speed_up():
    """The chosen variant's two seeds sit at 2.0x and 2.4x (FLOPs 6 and 5 of 12); "static" has, per seed, points at
    1.5x and 3x, so each of its seeds is read off its own curve at both speed-ups. "pabee" reaches 2.0x but not
    2.4x: left out. The row is the variant's mean minus static's mean
    over its (seed, speed-up) readings, with both seeds of each side counted. Mutations caught: reading the other
    method at the variant's mean speed-up only (its value changes), admitting a method that misses one speed-up
    (pabee, better, would be the best other), counting readings as seeds (2 / 4)."""
    from hashee.reports.equal_speedup import own_speedup_rows

    rng = np.random.default_rng(5)
    chosen = {0: [_point(rng.random(N) < 0.85, 6.0)], 1: [_point(rng.random(N) < 0.85, 5.0)]}
    static = {s: [_point(rng.random(N) < 0.9, 8.0), _point(rng.random(N) < 0.7, 4.0)] for s in (0, 1)}
    pabee = {0: [_point(np.ones(N, bool), 6.0), _point(np.ones(N, bool), 8.0)]}
    curves = {"hashee[frequency; chosen]": chosen, "static": static, "pabee": pabee}
    groups = {("hashee[frequency; chosen]", 2.0): [points[0] for points in chosen.values()]}
    (row,) = own_speedup_rows("t", "accuracy", groups, curves, {"hashee[frequency; chosen]"})
    assert row["versus"] == "static" and row["seeds"] == (2, 2) and row["target"] == 2.0
    assert row["speedups"] == pytest.approx((2.0, 2.4))
    readings = [mix_at(points, speed) for points in static.values() for speed in (2.0, 2.4)]
    expected = value("accuracy", [Mix(p[0], p[0], 0.0) for p in chosen.values()]) - value("accuracy", readings)
    assert row["difference"] == pytest.approx(100 * expected)
    # seeds that one reference holds (within 0.5 % of their mean) are read there instead: no row of their own
    close = {("hashee[frequency; chosen]", 2.0): [_point(LABELS == LABELS, 6.0), _point(LABELS == LABELS, 6.01)]}
    assert own_speedup_rows("t", "accuracy", close, curves, {"hashee[frequency; chosen]"}) == []
