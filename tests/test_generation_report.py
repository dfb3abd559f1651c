"""The generation report's pairs (hashee/reports/generation.py): paired per-example ROUGE, pooled over seeds, and
the Pareto order of two points at their own speed-ups, on hand-made runs."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from hashee.methods.registry import contract_of
from hashee.reports import generation


def _row(tmp_path, method: str, target, seed: int, speedup: float, scores: np.ndarray) -> dict:
    folder = tmp_path / f"{method}-{target}-{seed}"
    folder.mkdir()
    # stored out of split order, each run its own way: only the index pairs the examples
    order = np.random.default_rng(zlib.crc32(folder.name.encode())).permutation(len(scores))
    np.savez_compressed(folder / "rouge.npz", index=order, rougeL=scores[order])
    return {"task": "bbc_headlines", "method": method, "target": target, "seed": seed, "source": "run",
            "run_dir": str(folder), "primary_metric": "rougeL", "flops_speedup": speedup, "measured_speedup": None,
            "contract": contract_of(method.split("[")[0])}


@pytest.fixture
def rows(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.5, size=(2, 300))
    made = []
    for seed in (0, 1):
        made += [_row(tmp_path, "hashee[frequency]", 2.0, seed, 2.03, base[seed] - 0.05),
                 _row(tmp_path, "static", 2.0, seed, 2.54, base[seed]),           # faster and better: dominates
                 _row(tmp_path, "full", None, seed, 1.0, base[seed] - 0.05 + rng.normal(0, 0.01, 300))]  # slower, same
    made.append(_row(tmp_path, "static", 1.5, 0, 1.83, base[0] - 0.10))         # slower and worse (seed 0 only)
    return made


def test_pairs_are_paired_per_seed_and_ordered(rows):
    table = {(r["other"], r["other_target"]): r for r in generation.pair_rows(rows)}
    assert set(table) == {("static", 2.0), ("full", None), ("static", 1.5)}
    dominated = table[("static", 2.0)]
    assert dominated["seeds"] == 2 and dominated["interval"].mean == pytest.approx(-0.05)
    # paired example by example (by each run's index): the difference is the same on every example, so is its interval
    assert (dominated["interval"].low, dominated["interval"].high) == pytest.approx((-0.05, -0.05))
    assert dominated["order"] == "HashEE dominated" and dominated["other_speedup"] == pytest.approx(2.54)
    assert table[("full", None)]["order"] == "tie"
    assert table[("static", 1.5)]["seeds"] == 1 and table[("static", 1.5)]["order"] == "HashEE dominates"
    text = generation.markdown(rows)
    assert "| bbc_headlines | hashee[frequency] | 2.03 | static | 2.54 | 2 | -5.00 [" in text


def test_order_of_two_points():
    from hashee.core.stats import MeanInterval

    better, worse, tie = MeanInterval(0.02, 0.01, 0.03, 1), MeanInterval(-0.02, -0.03, -0.01, 1), MeanInterval(0, -0.01, 0.01, 1)
    assert generation.order(2.0, 1.5, better) == "HashEE dominates"
    assert generation.order(1.5, 2.0, better) == "trade-off (HashEE better, slower)"
    assert generation.order(1.5, 2.0, worse) == "HashEE dominated"
    assert generation.order(2.0, 1.5, worse) == "trade-off (HashEE worse, faster)"
    assert generation.order(2.0, 2.0, tie) == "tie"


def test_static_is_read_at_hashees_own_speedup_by_per_example_mixing(rows):
    # per seed, static's curve is full (1x), static@1.5 (1.83x, seed 0 only), static@2 (2.54x)
    table = {r["other"]: r for r in generation.equal_rows(rows)}
    assert set(table) == {"static"}  # the full model is a curve's end, not a competitor
    row = table["static"]
    assert row["seeds"] == 2 and row["not_reached"] == 0 and row["speedup"] == pytest.approx(2.03)
    # seed 0 mixes static@1.5 (base - 0.10) and static@2 (base); seed 1 mixes full (base - 0.05 + noise) and static@2
    w0 = (1 / 1.83 - 1 / 2.03) / (1 / 1.83 - 1 / 2.54)
    w1 = (1 / 1.0 - 1 / 2.03) / (1 / 1.0 - 1 / 2.54)
    expected = ((-0.05 - (1 - w0) * -0.10) + (-0.05 - (1 - w1) * -0.05)) / 2
    assert row["interval"].mean == pytest.approx(expected, abs=1e-3)
    # the seeds disagree (seed 0: +1.5 points, seed 1: -4.2): the two-level interval spans 0
    assert row["interval"].low < 0 < row["interval"].high and generation.equal_verdict(row) == "tie"


def test_a_curve_is_read_between_its_points_never_beyond():
    a, b = np.zeros(4), np.ones(4)
    assert generation.curve_at([(2.0, b), (1.0, a)], 1.0) is a
    assert generation.curve_at([(1.0, a), (2.0, b)], 2.0 * (1 + 0.004)) is b
    # half of the cost saved between 1x and 2x: 1/S = (1 - w) + w/2 at S = 4/3 gives w = 1/2
    assert generation.curve_at([(1.0, a), (2.0, b)], 4 / 3) == pytest.approx(np.full(4, 0.5))
    assert generation.curve_at([(1.0, a), (2.0, b)], 2.1) is None
    assert generation.curve_at([(1.5, a), (2.0, b)], 1.2) is None


def test_claim_lines_read_equal_speedup_and_fall_back_to_pareto(rows):
    lines = generation.claim_lines(rows)
    assert len(lines) == 3
    assert lines[2].startswith("- bbc_headlines, against static at equal realized speed-up: claim (b) does **not** hold (")
    assert "hashee[frequency]@2.0 (2.03x, 2 seeds): -" in lines[2] and lines[2].endswith("tie).")
    # static with its full-model end removed and HashEE outside its points: only the Pareto pairs can speak
    no_curve = [r for r in rows if r["method"] != "full" and not (r["method"] == "static" and r["target"] == 1.5)]
    line = generation.claim_lines(no_curve)[2]
    assert "its curve reaches no HashEE point; Pareto pairs): claim (b) does **not** hold (" in line
    assert "static@2.0 (2.54x): HashEE dominated" in line
    assert generation.claim_markdown([r for r in rows if r["method"] != "static"]) == ""
    for r in rows:  # HashEE made better than every static point: the claim holds
        if r["method"].startswith("hashee"):
            path = Path(r["run_dir"]) / "rouge.npz"
            with np.load(path) as saved:
                index, scores = saved["index"], saved["rougeL"]
            np.savez_compressed(path, index=index, rougeL=scores + 0.2)
    assert "claim (b) holds (" in generation.claim_lines(rows)[2]


def test_a_tie_counts_for_the_faster_point():
    from hashee.core.stats import MeanInterval

    tie = MeanInterval(0.0, -0.01, 0.01, 1)
    pair = {"order": "tie", "interval": tie, "speedup": 2.03, "other_speedup": 2.54}
    assert generation.standing(pair) == "behind"
    assert generation.standing({**pair, "speedup": 2.6}) == "ahead"
    assert generation.standing({**pair, "speedup": 2.54}) == "neither"
    assert generation.standing({**pair, "order": "trade-off (HashEE better, slower)"}) == "neither"
