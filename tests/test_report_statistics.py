"""The report's statistics sections (hashee/reports/statistics.py) on tiny runs whose answers are known by hand.

Each run is a report row (as :func:`hashee.reports.collect.collect_runs` makes them) with a ``predictions.npz``
in its run directory; its predictions are right on a chosen set of the same 200 examples.
"""

from __future__ import annotations

import statistics as pystats
from pathlib import Path

import numpy as np
import pytest

from hashee.reports.statistics import (
    by_point,
    interval_rows,
    load_outputs,
    pareto_rows,
    statistics_sections,
)
from hashee.runs.results import PREDICTIONS_FILE

N = 200
LABELS = np.random.default_rng(0).integers(0, 2, N)


def _run(root: Path, method: str, target: float | None, seed: int, right: np.ndarray | int, speedup: float,
         task: str = "t") -> dict:
    """A report row whose run is right on the examples ``right`` (a mask, or the first ``right``). Its
    predictions.npz is written in a shuffled order, as the index array allows: loading must restore it."""
    mask = np.arange(N) < right if isinstance(right, int) else np.asarray(right, dtype=bool)
    predicted = np.where(mask, LABELS, 1 - LABELS)
    run_dir = root / f"{task}_{method}_{target}_{seed}"
    run_dir.mkdir(parents=True)
    order = np.random.default_rng(seed + 7).permutation(N)
    np.savez(run_dir / PREDICTIONS_FILE, index=order, label=LABELS[order], prediction=predicted[order])
    return {"task": task, "method": method, "target": target, "seed": seed, "primary_metric": "accuracy",
            "primary": float(mask.mean()), "flops_speedup": speedup, "run_dir": str(run_dir), "source": "run",
            "primary_ci95": None}


def _sections(rows: list[dict], root: Path) -> dict:
    """:func:`statistics_sections` into a fresh output directory (the report creates it before; so does this)."""
    out = root / "out"
    out.mkdir(exist_ok=True)
    return statistics_sections(rows, out)


def _tables(rows: list[dict]) -> tuple[list, list]:
    outputs = load_outputs(rows)
    points = by_point(rows, outputs)
    return interval_rows(points, outputs), pareto_rows(points, outputs)


def test_no_row_pairs_two_methods_at_one_nominal_target(tmp_path):
    """Two methods at target 2 that realize 2.0x and 2.1x: the statistics sections hold no paired row for them
    (comparisons are made at equal realized speed-up only: hashee/reports/equal_speedup.py).

    Mutation caught: a paired-comparisons section at nominal targets put back into ``statistics_sections``."""
    rows = [_run(tmp_path, "hashee[frequency]", 2.0, 0, 160, 2.0), _run(tmp_path, "pabee", 2.0, 0, 190, 2.1)]
    report = _sections(rows, tmp_path)
    assert set(report["tables"]) == {"intervals", "pareto"}
    assert "Paired comparisons" not in report["markdown"]


def test_a_pareto_score_between_two_linear_curves_is_their_mean_gap(tmp_path):
    """Static truncation from the full model (1x, 90 %) to k = L/3 (3x, 70 %): the line 0.9 - 0.1 (x - 1).
    pabee at 1.5x (88 %) and 2.5x (78 %) lies 3 points above it at both ends, so its gap is 3 points all along:
    Pareto score +3.00. hashee has a single point, which shares no speed-up range with anything: no score.
    static and full are not scored against themselves.

    Mutations caught: static's curve not starting at the full model (``curve_of`` without the ``m == "full"``
    case: one reference point, no score at all), the curve and the reference swapped (-3.00), and the x100 to
    points dropped."""
    rows = [_run(tmp_path, "full", None, 0, 180, 1.0),
            _run(tmp_path, "static", 3.0, 0, 140, 3.0),
            _run(tmp_path, "pabee", 1.5, 0, 176, 1.5),
            _run(tmp_path, "pabee", 2.5, 0, 156, 2.5),
            _run(tmp_path, "hashee[frequency]", 2.0, 0, 170, 2.0)]
    pareto = _tables(rows)[1]
    assert [(r["task"], r["method"], r["metric"], r["seeds"]) for r in pareto] == [("t", "pabee", "accuracy", 1)]
    score = pareto[0]
    assert score["score"] == pytest.approx(3.0)
    assert score["low"] <= 3.0 <= score["high"]
    assert "| t | pabee | accuracy | 1 | +3.00 |" in _sections(rows, tmp_path)["markdown"]


def test_intervals_over_seeds_and_over_examples(tmp_path):
    """pabee over two seeds at 80 % and 84 %: mean 0.82, sample std 0.02 * sqrt(2), 95 % t interval
    0.82 +- t(0.975, 1) * 0.02 = 0.82 +- 0.25412. The full model, one seed right on every example: its bootstrap
    interval over examples is [1, 1] (every resample is 100 % right).

    Mutations caught: the population std (``statistics.pstdev``: 0.02), and a one-seed interval that is not the
    run's own (e.g. ``seed_interval`` of one value, or the t interval taken for one seed)."""
    rows = [_run(tmp_path, "pabee", 2.0, 0, 160, 2.0), _run(tmp_path, "pabee", 2.0, 1, 168, 2.0),
            _run(tmp_path, "full", None, 0, N, 1.0)]
    intervals = {r["method"]: r for r in _tables(rows)[0]}
    pabee, full = intervals["pabee"], intervals["full"]
    assert pabee["seeds"] == 2 and pabee["interval"] == "t over seeds"
    assert pabee["mean"] == pytest.approx(0.82) and pabee["std"] == pytest.approx(0.02 * 2 ** 0.5)
    assert pabee["std"] == pytest.approx(pystats.stdev([0.80, 0.84]))
    assert pabee["low"] == pytest.approx(0.82 - 12.706205 * 0.02, rel=1e-6)
    assert pabee["high"] == pytest.approx(0.82 + 12.706205 * 0.02, rel=1e-6)
    assert full["seeds"] == 1 and full["interval"] == "bootstrap over examples" and full["std"] == 0.0
    assert (full["mean"], full["low"], full["high"]) == (1.0, 1.0, 1.0)


def test_runs_without_predictions_are_left_out_and_counted(tmp_path):
    """A run whose predictions.npz is missing (older code) is in no table and is counted in the text; a row read off
    a curve (``source == "curve"``) is never a run of these sections. Mutation caught: ``load_outputs`` not checking
    that the file exists (the report would crash), or counting curve rows as left out (2 instead of 1)."""
    kept = _run(tmp_path, "pabee", 2.0, 0, 160, 2.0)
    missing = _run(tmp_path, "pabee", 2.0, 1, 170, 2.0)
    (Path(missing["run_dir"]) / PREDICTIONS_FILE).unlink()
    curve = {**missing, "target": 3.0, "source": "curve"}  # read off the curve of the run without predictions
    report = _sections([kept, missing, curve], tmp_path)
    assert [(r["method"], r["target"], r["seeds"]) for r in report["tables"]["intervals"]] == [("pabee", 2.0, 1)]
    assert "1 run(s) without predictions.npz" in report["markdown"]
