"""The generation report's pairs (hashee/reports/generation.py): paired per-example ROUGE, pooled over seeds, and
the Pareto order of two points at their own speed-ups, on hand-made runs."""

from __future__ import annotations

import zlib

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


def test_claim_lines_read_each_early_exit_method_not_the_full_model(rows):
    lines = generation.claim_lines(rows)
    assert len(lines) == 3 and "full" not in lines[2].split(": claim")[0]
    # static@2 (2.54x) dominates HashEE@2, HashEE@2 dominates static@1.5 (1.83x): mixed
    assert lines[2].startswith("- bbc_headlines, against static (1+ seeds per pair): claim (b) is mixed (")
    assert "static@2.0 (2.54x): HashEE dominated" in lines[2] and "static@1.5 (1.83x): HashEE dominates" in lines[2]
    only_slow = [r for r in rows if not (r["method"] == "static" and r["target"] == 2.0)]
    assert "claim (b) holds (" in generation.claim_lines(only_slow)[2]
    only_fast = [r for r in rows if not (r["method"] == "static" and r["target"] == 1.5)]
    assert "claim (b) does **not** hold (" in generation.claim_lines(only_fast)[2]
    assert generation.claim_markdown([r for r in rows if r["method"] != "static"]) == ""


def test_a_tie_counts_for_the_faster_point():
    from hashee.core.stats import MeanInterval

    tie = MeanInterval(0.0, -0.01, 0.01, 1)
    pair = {"order": "tie", "interval": tie, "speedup": 2.03, "other_speedup": 2.54}
    assert generation.standing(pair) == "behind"
    assert generation.standing({**pair, "speedup": 2.6}) == "ahead"
    assert generation.standing({**pair, "speedup": 2.54}) == "neither"
    assert generation.standing({**pair, "order": "trade-off (HashEE better, slower)"}) == "neither"
