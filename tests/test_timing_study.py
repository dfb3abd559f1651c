"""hashee-timing: a tiny sweep's runs reloaded at their recorded operating point and timed in every scenario; the
comparison rules on hand-made points; the latency summary and the interleaving on a fake clock.

The fake clock is ``perf_counter`` of :mod:`hashee.core.cost` (what ``time_inference`` and ``fastest_call`` read),
as in tests/test_timing.py: a stand-in method advances it instead of sleeping. Times are multiples of 1/256 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from hashee.cli.timing import LoadedRun, Scenario, Timer, latency_summary, load_weights, main, parse_scenarios, time_scenario
from hashee.methods.registry import MethodContract
from hashee.reports.timing import equal_quality_winners, equal_time_winners, head_to_head, pareto_front, verdict
from hashee.core.backbone import load_backbone
from hashee.experiments.steps import instantiate_method
from hashee.experiments.training import trained_model_file
from hashee.tasks.spec import TaskSpec

TICK = 1 / 256


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A finished 2-job tiny sweep (the full model and HashEE at 2x), its caches in the same temporary folder."""
    root = tmp_path_factory.mktemp("timing_sweep")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HASHEE_CACHE": str(root / "cache")}
    cmd = [sys.executable, "-m", "hashee.cli", "-m", "+sweep=smoke", "method=full,hashee", "target_speedup=2",
           f"hydra.sweep.dir={root / 'sweep'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return root / "sweep"


@pytest.fixture(scope="module")
def study(sweep) -> dict[str, Any]:
    """hashee-timing on the sweep (its console-script entry point), one repeat, a latency and a throughput scenario."""
    out = sweep.parent / "timing"
    assert main([str(sweep), "--out", str(out), "--repeats", "1", "--scenarios", "single,batch16", "--threads", "1",
                 "--warmup", "1", "--device", "cpu"]) == 0
    return {"record": json.loads((out / "timing.json").read_text()), "markdown": (out / "timing.md").read_text(),
            "out": out}


def results_of(sweep: Path) -> dict[str, dict[str, Any]]:
    return {str(p.parent.relative_to(sweep)): json.loads(p.read_text()) for p in sweep.rglob("results.json")}


def test_every_run_is_timed_in_every_scenario(study, sweep):
    record = study["record"]
    assert {r["run"] for r in record["runs"]} == set(results_of(sweep)) and len(record["runs"]) == 2
    assert {r["method"] for r in record["runs"]} == {"full", "hashee"} and not record["skipped"]
    assert [(e["scenario"], e["threads"], e["latency"]) for e in record["scenarios"]] == [("single", 1, True),
                                                                                          ("batch16", 1, False)]
    for entry in record["scenarios"]:
        assert {p["run"] for p in entry["points"]} == {r["run"] for r in record["runs"]}
        assert entry["examples"] == 64 and entry["repeats"] == 1 and isinstance(entry["noise_flagged"], bool)
        assert entry["fastest_at_equal_quality"]["points"] == 2 and entry["best_at_equal_time"]["points"] == 2
        assert set(entry["pareto"]) == {"full", "hashee"} and (study["out"] / entry["plot"]).stat().st_size > 0
        for point in entry["points"]:
            assert point["time_s"] > 0 and point["speedup_vs_full"] > 0
            assert point["time_spread"]["min"] <= point["time_spread"]["median"] <= point["time_spread"]["max"]
            if entry["latency"]:
                assert 0 < point["p50_s"] <= point["p95_s"] <= point["p99_s"] and point["time_s"] == point["p50_s"]
            else:
                assert point["examples_per_s"] == pytest.approx(64 / point["seconds"])
    table = study["markdown"]
    full_quality = next(r["quality"] for r in record["runs"] if r["method"] == "full")
    assert table.count("## rotten_tomatoes: ") == 2 and table.count(f"| full | {full_quality:.4f} |") == 2
    hashee_label = next(p["label"] for p in record["scenarios"][0]["points"] if p["method"] == "hashee")
    assert hashee_label.startswith("hashee[") and hashee_label.endswith("]@2x")  # as the report labels it
    assert table.count(f"| {hashee_label} |") == 2 and table.count("Fastest at equal quality: ") == 2
    assert table.count("| hashee against |") == 2 and [r["other"] for r in record["scenarios"][0]["head_to_head"]] == [
        "full"]
    assert record["meta"]["code"]["fingerprint"]  # which code timed it
    assert "| p50 ms | p95 ms | p99 ms |" in table and "| examples/s |" in table


def test_the_reloaded_models_have_the_recorded_operating_point(study, sweep):
    """The weights, hash and operating point rebuilt from results.json give exactly the recorded FLOPs speed-up
    and quality on the reported split."""
    saved = results_of(sweep)
    for run in study["record"]["runs"]:
        recorded = saved[run["run"]]
        assert run["verified"] and run["flops_speedup_reloaded"] == recorded["cost"]["flops_speedup"]
        assert run["primary_reloaded"] == recorded["primary"] == run["quality"]
        assert run["operating_point"]["same"] and run["operating_point"]["prepare_same"]
        assert run["weights"] == f"{run['run']}/checkpoints/best-main.ckpt"
    hashee = next(r for r in study["record"]["runs"] if r["method"] == "hashee")
    assert hashee["flops_speedup_reloaded"] > 1.2


def test_the_record_holds_no_absolute_path(study, sweep):
    def strings(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [s for k, v in value.items() for s in [k, *strings(v)]]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    found = strings(study["record"])
    assert found and not [s for s in found if os.path.isabs(s) or str(sweep.parent) in s]


def test_the_weights_of_a_reusing_or_moved_run_are_found(sweep):
    """A run that reused another target's training loads the trained-model file (``train.reused_from``); a run whose
    recorded checkpoint path is gone (the sweep moved) loads its own ``checkpoints/``; both equal its checkpoint."""
    run_dir = next(p.parent for p in sweep.rglob("results.json") if "method=full" in str(p))
    saved = json.loads((run_dir / "results.json").read_text())
    cfg = OmegaConf.create(saved["config"])
    checkpoint = torch.load(run_dir / "checkpoints" / "best-main.ckpt", weights_only=True)["state_dict"]
    gone = {"best_checkpoint": "/moved/away/best-main.ckpt"}
    for train, expected in [({"reused_from": str(trained_model_file(cfg)), "stages": [gone]}, trained_model_file(cfg)),
                            ({"stages": [gone]}, run_dir / "checkpoints" / "best-main.ckpt")]:
        module = instantiate_method(cfg.method, spec=TaskSpec.from_config(cfg.task),
                                    backbone=load_backbone(cfg.backbone), optim=cfg.optim)
        assert load_weights(module, run_dir, {"train": train}) == expected
        assert all(torch.equal(checkpoint[k], v) for k, v in module.state_dict().items())
    with pytest.raises(FileNotFoundError, match="no trained weights"):
        load_weights(module, run_dir, {"train": {"stages": [{"best_checkpoint": None}]}})


def point(label: str, quality: float, time_s: float) -> dict[str, Any]:
    return {"label": label, "method": label[0], "quality": quality, "time_s": time_s}


def test_fastest_at_equal_quality_and_best_at_equal_time_on_hand_made_points():
    """A: (1.0 s, 0.80), (2.0 s, 0.85); B: (1.5 s, 0.82), (4.0 s, 0.90); C: (0.5 s, 0.84).
    Equal quality: A1's rivals of quality >= 0.80 include C1 at 0.5 s, B1's include C1 too: C wins A1, B1 and C1,
    A2 (no rival of >= 0.85 faster) and B2 (none as good) keep themselves. Equal time: C1 (0.84 at 0.5 s) beats A1
    and B1 in time and quality; A2 and B2 keep themselves, nothing faster being as good."""
    points = [point("A1", 0.80, 1.0), point("A2", 0.85, 2.0), point("B1", 0.82, 1.5), point("B2", 0.90, 4.0),
              point("C1", 0.84, 0.5)]
    quality = verdict(points, equal_quality_winners(points))
    assert quality["winner_of"] == {"A1": "C1", "A2": "A2", "B1": "C1", "B2": "B2", "C1": "C1"}
    assert (quality["method"], quality["wins"], quality["points"]) == ("C", 3, 5)
    assert quality["wins_by_method"] == {"C": 3, "A": 1, "B": 1} and quality["text"] == "C (3 of 5 points)"
    timed = verdict(points, equal_time_winners(points))
    assert timed["winner_of"] == {"A1": "C1", "A2": "A2", "B1": "C1", "B2": "B2", "C1": "C1"}
    assert (timed["method"], timed["wins"]) == ("C", 3)
    # a method's own slower point never beats it (only the other methods' points are rivals)
    assert equal_quality_winners([point("A1", 0.8, 1.0), point("A2", 0.9, 0.5)])[0]["label"] == "A1"
    # equal quality and time: each point keeps itself, and the verdict is a tie
    tie = [point("X1", 0.8, 1.0), point("Y1", 0.8, 1.0)]
    for winners in (equal_quality_winners(tie), equal_time_winners(tie)):
        assert [w["label"] for w in winners] == ["X1", "Y1"]
        assert verdict(tie, winners)["method"] is None and verdict(tie, winners)["tied"] == ["X", "Y"]
    # a method's Pareto frontier: A3 is slower than A2 and worse
    front = pareto_front([point("A3", 0.83, 3.0), point("A2", 0.85, 2.0), point("A1", 0.80, 1.0)])
    assert [p["label"] for p in front] == ["A1", "A2"]


def test_head_to_head_reads_both_frontiers_only_where_both_reach():
    """H (focal): (1.0 s, 0.80), (2.0 s, 0.86); B: (1.5 s, 0.82), (4.0 s, 0.90).
    Equal quality, levels 0.80, 0.82, 0.86, 0.90: at 0.80 and 0.82 H needs 1.0 s... no: at 0.82 H needs 2.0 s, B
    1.5 s; at 0.80 H 1.0 s, B 1.5 s; at 0.86 H 2.0 s, B 4.0 s; 0.90 is beyond H (not read). Ratios B/H: 1.5, 0.75, 2.0.
    Equal time, budgets 1.0, 1.5, 2.0, 4.0: at 1.0 s B has nothing (not read); 1.5 s: 0.80 vs 0.82; 2.0 s: 0.86 vs
    0.82; 4.0 s: 0.86 vs 0.90. Mutations caught: the focal's own points as rivals (other == focal), a level beyond
    one method read (a None compared), ratios inverted, gaps of the wrong sign."""
    points = [{"label": "H1", "method": "H", "quality": 0.80, "time_s": 1.0, "focal": True},
              {"label": "H2", "method": "H", "quality": 0.86, "time_s": 2.0, "focal": True},
              {"label": "B1", "method": "B", "quality": 0.82, "time_s": 1.5, "focal": False},
              {"label": "B2", "method": "B", "quality": 0.90, "time_s": 4.0, "focal": False}]
    (row,) = head_to_head(points)
    assert row["other"] == "B" and row["time_ratios"] == [1.5, 0.75, 2.0]
    assert (row["faster_levels"], row["slower_levels"]) == (2, 1)
    assert [round(g, 4) for g in row["quality_gaps"]] == [-0.02, 0.04, -0.04]
    assert (row["better_budgets"], row["worse_budgets"]) == (1, 2)
    assert head_to_head([{**p, "focal": False} for p in points]) == []




class _Ticking:
    """Stand-in for a module: each call of ``predict`` / ``full_logits`` advances the fake clock by the next of its
    costs (in ticks, cyclically), and ``calls`` logs the order of the calls."""

    def __init__(self, clock: list[float], name: str, costs: list[int], calls: list[str]) -> None:
        self.clock, self.name, self.costs, self.calls, self.count = clock, name, costs, calls, 0

    def predict(self, batch: Any) -> None:
        self.clock[0] += self.costs[self.count % len(self.costs)] * TICK
        self.count += 1
        self.calls.append(self.name)

    full_logits = predict


def test_latency_percentiles_on_a_fake_clock(clock):
    """100 examples taking 1..100 ticks (shuffled), after one cold warm-up call of 1000 ticks that is not timed:
    p50 = 50.5, p95 = 95.05 and p99 = 99.01 ticks (linear interpolation), mean 50.5, total 5050."""
    ticks = [(37 * i) % 100 + 1 for i in range(100)]  # a permutation of 1..100
    stand_in = _Ticking(clock, "m", [1000, *ticks], [])
    seconds = Timer(torch.device("cpu")).latencies(stand_in.predict, [{}] * 100, warmup=1)
    assert seconds == [t * TICK for t in ticks]
    summary = latency_summary(seconds)
    assert summary["p50_s"] == pytest.approx(50.5 * TICK) and summary["p95_s"] == pytest.approx(95.05 * TICK)
    assert summary["p99_s"] == pytest.approx(99.01 * TICK) and summary["mean_s"] == pytest.approx(50.5 * TICK)
    assert summary["total_s"] == 5050 * TICK


def test_runs_are_interleaved_the_fastest_pass_kept_and_the_noise_checked(clock):
    """Two repeats over 2 batches of 3 examples. A takes 2 ticks a batch, then 1; B always 3; the full model 1 tick
    a batch before the runs and 2 after (a machine slowing down: 0.5x against itself, flagged)."""
    calls: list[str] = []
    full = _Ticking(clock, "full", [1, 1, 2, 2], calls)
    runs = [LoadedRun(name, name, MethodContract(name=name), None, 0.8, _Ticking(clock, name, costs, calls),
                      {"flops_speedup_reloaded": 1.0, "verified": True}, name) for name, costs in
            [("a", [2, 2, 1, 1]), ("b", [3])]]
    batches = [{"input_ids": torch.zeros(3, 5)}] * 2
    timer = Timer(torch.device("cpu"))
    entry = time_scenario(runs, full.full_logits, batches, Scenario("batch3", 3, False), 2, 0, timer)
    assert calls == ["full"] * 2 + ["a"] * 2 + ["b"] * 2 + ["full"] * 4 + ["b"] * 2 + ["a"] * 2 + ["full"] * 2
    a, b = entry["points"]
    assert a["seconds"] == 2 * TICK and a["examples_per_s"] == 6 / (2 * TICK) and b["seconds"] == 6 * TICK
    assert a["time_spread"] == pytest.approx({"min": 2 * TICK / 6, "median": 3 * TICK / 6, "max": 4 * TICK / 6})
    assert entry["noise_check"] == 0.5 and entry["noise_flagged"] and entry["examples"] == 6
    assert entry["full"]["seconds"] == 2 * TICK and a["speedup_vs_full"] == 1.0
    assert b["speedup_vs_full"] == pytest.approx(1 / 3)
    assert entry["fastest_at_equal_quality"]["winner_of"] == {"a": "a", "b": "a"}


def test_the_console_script_is_declared():
    import tomllib

    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["hashee-timing"] == "hashee.cli.timing:main"


def test_scenarios_are_parsed_and_a_bad_one_refused():
    assert parse_scenarios("single,batch32,batch128") == [Scenario("single", 1, True), Scenario("batch32", 32, False),
                                                          Scenario("batch128", 128, False)]
    for bad in ("batch0", "stream", "batchx", ""):
        with pytest.raises(ValueError, match="scenario"):
            parse_scenarios(bad)


def test_the_report_of_a_study_with_a_timing_record_has_its_time_section(study, sweep, tmp_path):
    """A study folder holding ``timing.json`` (as a committed study does): its report adds the timing tables, headings
    one level down, and draws the plots again from the record."""
    import shutil

    from hashee.reports.build import build_report

    shutil.copy(study["out"] / "timing.json", sweep / "timing.json")
    try:
        built = build_report(sweep, tmp_path / "report")
    finally:
        (sweep / "timing.json").unlink()
    text = (tmp_path / "report" / "report.md").read_text()
    assert "\n## Timing study: " in text and "\n### rotten_tomatoes: single (batch 1), 1 thread(s)" in text
    plots = [e["plot"] for e in study["record"]["scenarios"]]
    assert all((tmp_path / "report" / p).stat().st_size > 0 and p in built["images"] for p in plots)


def test_weights_outside_the_sweep_are_named_without_a_machine_path(tmp_path):
    from hashee.cli.timing import portable_weights

    sweep = tmp_path / "sweep"
    assert portable_weights(sweep / "job" / "checkpoints" / "best-main.ckpt", sweep) == "job/checkpoints/best-main.ckpt"
    cached = tmp_path / "cache" / "trained" / "sst2-pabee-0123.pt"
    assert portable_weights(cached, sweep) == "<cache>/trained/sst2-pabee-0123.pt"
