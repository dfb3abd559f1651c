"""hashee-report on a sweep directory: tables, CSV, plots; partial sweeps included."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

import hashee.cli.hashee_report as report_module
from hashee.cli.hashee_report import main
from hashee.reports.aggregate import aggregate
from hashee.reports.build import build_report
from hashee.reports.plots import exit_histogram_panels


def _fake_run(root: Path, name: str, method: str, seed: int, primary: float, speedup: float, status: str = "complete",
              target: float | None = 2.0, hash_name: str = "frequency", backbone: str = "minilm") -> None:
    run = root / name
    run.mkdir(parents=True)
    results = {
        "task": "sst2", "method": method, "seed": seed, "primary_metric": "accuracy", "primary": primary,
        "metrics": {"accuracy": primary},
        "cost": {"flops_speedup": speedup, "measured_speedup": speedup * 0.9, "efficiency": 0.9},
        "config": {"target_speedup": target, "hashee": {"target_speedup": target}, "hash": {"name": hash_name},
                   "backbone": {"name": backbone}},
        "method_info": {"prepare": {"hash": {"train_exit_histogram": [5, 3, 2, 1, 1, 4]}}} if method == "hashee" else {},
        "status": status,
    }
    (run / "results.json").write_text(json.dumps(results))


def test_report_aggregates_seeds_and_writes_files(tmp_path):
    sweep = tmp_path / "sweep"
    _fake_run(sweep, "a", "hashee", 0, 0.80, 2.0)
    _fake_run(sweep, "b", "hashee", 1, 0.84, 2.2)
    _fake_run(sweep, "c", "full", 0, 0.86, 1.0, target=None)
    _fake_run(sweep, "d", "pabee", 0, 0.83, 2.1)
    _fake_run(sweep, "e", "pabee", 1, 0.0, 0.0, status="running")  # an interrupted job is counted, not used
    report = build_report(sweep, tmp_path / "out")
    hashee = [r for r in report["table"] if r["method"] == "hashee[frequency]"][0]
    assert hashee["seeds"] == 2 and abs(hashee["primary_mean"] - 0.82) < 1e-9 and hashee["primary_std"] > 0
    assert report["statuses"] == {"complete": 4, "running": 1}
    out = tmp_path / "out"
    for name in ("report.md", "report.html", "runs.csv", "sst2_flops_speedup.png", "sst2_measured_speedup.png",
                 "exit_histograms.png"):
        assert (out / name).stat().st_size > 0, name
    assert "hashee[frequency]" in (out / "report.md").read_text()
    assert len((out / "runs.csv").read_text().strip().splitlines()) == 5  # header + 4 complete runs


def test_aggregate_keeps_targets_apart():
    rows = [{"task": "t", "method": "m", "target": s, "primary_metric": "accuracy", "primary": 0.5,
             "flops_speedup": s, "measured_speedup": s, "efficiency": 1.0} for s in (1.5, 2.0)]
    assert [r["target"] for r in aggregate(rows)] == [1.5, 2.0]


def test_std_over_seeds_is_the_sample_std():
    """n - 1 in the denominator (statistics.stdev), not the population std; one seed has std 0."""
    def row(seed, primary, target=2.0):
        return {"task": "t", "method": "m", "target": target, "seed": seed, "primary_metric": "accuracy",
                "primary": primary, "flops_speedup": 2.0, "measured_speedup": 1.8, "efficiency": 0.9}

    three, one = aggregate([row(0, 0.80), row(1, 0.84), row(2, 0.90), row(0, 0.7, target=3.0)])
    assert three["seeds"] == 3 and three["primary_mean"] == pytest.approx(0.846666667, rel=1e-8)
    assert three["primary_std"] == pytest.approx(0.0503322296, rel=1e-8)  # sqrt(0.00506667 / 2); pstdev: 0.0411
    assert one["seeds"] == 1 and one["primary_std"] is None  # one seed: no spread over seeds, never a zero


def test_exit_histograms_get_a_panel_per_task_and_target():
    def row(task, method, target, counts):
        return {"task": task, "method": method, "target": target, "exit_histogram": counts}

    rows = [row("sst2", "hashee[random]", 2.0, [4, 1]), row("sst2", "hashee[mi]", 2.0, [3, 2]),
            row("sst2", "hashee[mi]", 3.0, [5, 0]), row("mrpc", "hashee[mi]", 2.0, [1, 4]),
            row("sst2", "hashee[mi]", 2.0, [0, 5]),  # a second seed: the first histogram is kept
            row("sst2", "pabee", 2.0, [1, 1]), row("sst2", "hashee[random]", 1.5, None)]
    panels = exit_histogram_panels(rows)
    assert sorted(panels) == [("mrpc", 2.0), ("sst2", 2.0), ("sst2", 3.0)]
    assert panels[("sst2", 2.0)] == {"hashee[random]": [4, 1], "hashee[mi]": [3, 2]}


def test_cli_refuses_a_missing_directory(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2


def test_curves_give_rows_at_other_targets_chosen_on_validation(tmp_path):
    sweep = tmp_path / "sweep"
    _fake_run(sweep, "p", "pabee", 0, 0.83, 2.1)
    path = sweep / "p" / "results.json"
    results = json.loads(path.read_text())
    val = [{"value": t, "primary": 0.9 - 0.05 * i, "flops_speedup": s} for i, (t, s) in enumerate([(5, 1.2), (3, 1.6), (2, 2.1), (1, 3.4)])]
    # the test curve is deliberately different: the choice must follow the validation curve
    test = [{"value": t, "primary": 0.5 + 0.1 * i, "flops_speedup": s + 0.05, "metrics": {"accuracy": 0.5 + 0.1 * i}}
            for i, (t, s) in enumerate([(5, 1.2), (3, 1.6), (2, 2.1), (1, 3.4)])]
    results["method_info"] = {"operating_point": {"val_curve": val}, "test_curve": test}
    path.write_text(json.dumps(results))
    rows = {r["target"]: r for r in build_report(sweep, tmp_path / "out", (1.5, 2.0, 3.0))["table"]}
    assert rows[1.5]["primary_mean"] == 0.6 and rows[1.5]["measured_speedup"] is None  # knob 3 (val 1.6 >= 1.5)
    assert rows[3.0]["primary_mean"] == 0.8  # knob 1
    assert rows[2.0]["primary_mean"] == 0.83  # the run's own, measured point


def test_one_row_per_seed_and_measured_runs_win_over_curve_points(tmp_path):
    sweep = tmp_path / "sweep"
    for name, target in (("a", 1.5), ("b", 2.0)):
        _fake_run(sweep, name, "pabee", 0, 0.8 if target == 2.0 else 0.7, target, target=target)
        path = sweep / name / "results.json"
        results = json.loads(path.read_text())
        curve = [{"value": t, "primary": 0.5, "flops_speedup": s} for t, s in ((3, 1.6), (2, 2.1))]
        results["method_info"] = {"operating_point": {"val_curve": curve}, "test_curve": curve}
        path.write_text(json.dumps(results))
    _fake_run(sweep, "f1", "full", 0, 0.9, 1.0, target=1.5)
    _fake_run(sweep, "f2", "full", 0, 0.9, 1.0, target=2.0)
    table = build_report(sweep, tmp_path / "out", (1.5, 2.0, 3.0))["table"]
    pabee = {r["target"]: r for r in table if r["method"] == "pabee"}
    assert pabee[1.5]["seeds"] == 1 and pabee[1.5]["primary_mean"] == 0.7  # measured run, not the curve point
    assert pabee[2.0]["primary_mean"] == 0.8
    assert [r["target"] for r in table if r["method"] == "full"] == [None]  # the full model has no target


def test_a_sweep_over_backbones_reports_each_task_per_backbone(tmp_path):
    """+sweep=depth: the same task, method, target and seed on two backbones are two rows, never one."""
    sweep = tmp_path / "sweep"
    for backbone, primary in (("minilm", 0.80), ("mpnet_base", 0.88)):
        _fake_run(sweep, f"h_{backbone}", "hashee", 0, primary, 2.0, backbone=backbone)
        _fake_run(sweep, f"f_{backbone}", "full", 0, primary + 0.05, 1.0, target=None, backbone=backbone)
    report = build_report(sweep, tmp_path / "out")
    got = {(r["task"], r["method"]): r["primary_mean"] for r in report["table"]}
    assert got == pytest.approx({("sst2@minilm", "full"): 0.85, ("sst2@minilm", "hashee[frequency]"): 0.80,
                   ("sst2@mpnet_base", "full"): 0.93, ("sst2@mpnet_base", "hashee[frequency]"): 0.88})
    assert (tmp_path / "out" / "sst2@mpnet_base_flops_speedup.png").stat().st_size > 0
    assert {r["backbone"] for r in report["rows"]} == {"minilm", "mpnet_base"}
    one = tmp_path / "one"
    _fake_run(one, "a", "hashee", 0, 0.80, 2.0)
    assert [r["task"] for r in build_report(one, tmp_path / "out1")["table"]] == ["sst2"]  # one backbone: as named


def _sweep_with_runs(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    _fake_run(sweep, "a", "hashee", 0, 0.80, 2.0)
    _fake_run(sweep, "c", "full", 0, 0.86, 1.0, target=None)
    return sweep


def _report_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("W&B Report")]


def test_wandb_report_offline_prints_one_line_and_writes_the_local_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep = _sweep_with_runs(tmp_path)
    assert main([str(sweep), "--wandb", "--wandb-report", "--online", "--entity", "me"]) == 0
    lines = _report_lines(capsys.readouterr().out)
    assert lines == ["W&B Report not built: W&B is offline (WANDB_MODE=offline); the local report is written"]
    assert (sweep / "report" / "report.md").stat().st_size > 0
    assert list((sweep / "report" / "wandb").glob("offline-run-*"))  # --wandb still logged, offline


@pytest.mark.parametrize("args,missing_package,reason", [
    ([], False, "W&B is offline (pass --online)"),
    (["--online"], False, "no W&B entity (pass --entity or set WANDB_ENTITY)"),
    (["--online", "--entity", "me"], True, "wandb-workspaces is not installed (pip install -e '.[report]')"),
])
def test_wandb_report_says_in_one_line_why_it_was_not_built(tmp_path, capsys, monkeypatch, args, missing_package,
                                                             reason):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    monkeypatch.setattr(report_module, "log_to_wandb", lambda *a: None)  # no W&B run from this test
    if missing_package:
        monkeypatch.setitem(sys.modules, "wandb_workspaces.reports.v2", None)  # import fails
    sweep = _sweep_with_runs(tmp_path)
    assert main([str(sweep), "--wandb-report", *args]) == 0
    assert _report_lines(capsys.readouterr().out) == [f"W&B Report not built: {reason}; the local report is written"]
    assert (sweep / "report" / "report.md").exists()


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _fake_reports_module() -> types.ModuleType:
    """Stands in for ``wandb_workspaces.reports.v2``: records what is built and saved."""
    module = types.ModuleType("wandb_workspaces.reports.v2")
    for name in ("Runset", "PanelGrid", "WeavePanelSummaryTable", "MediaBrowser", "Layout", "H1", "P"):
        setattr(module, name, type(name, (_Recorded,), {}))

    class Report(_Recorded):
        saved: list = []

        def save(self):
            Report.saved.append(self)

        @property
        def url(self):
            return f"https://wandb.example/{self.kwargs['entity']}/{self.kwargs['project']}/reports/r1"

    module.Report = Report
    return module


def test_wandb_report_is_built_for_the_sweep_group_and_saved(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    fake = _fake_reports_module()
    monkeypatch.setitem(sys.modules, "wandb_workspaces.reports.v2", fake)
    logged = []
    monkeypatch.setattr(report_module, "log_to_wandb", lambda report, sweep_dir, online: logged.append(online))
    sweep = _sweep_with_runs(tmp_path)
    assert main([str(sweep), "--wandb-report", "--online", "--entity", "me"]) == 0
    assert logged == [True]  # the report run (table + plots) is logged online first, in the same group
    assert _report_lines(capsys.readouterr().out) == ["W&B Report: https://wandb.example/me/hashee-bench/reports/r1"]

    (document,) = fake.Report.saved
    assert document.kwargs["project"] == "hashee-bench" and document.kwargs["entity"] == "me"
    assert "sweep" in document.kwargs["title"]
    (grid,) = [b for b in document.kwargs["blocks"] if isinstance(b, fake.PanelGrid)]
    (runset,) = grid.kwargs["runsets"]
    assert runset.kwargs["project"] == "hashee-bench" and runset.kwargs["entity"] == "me"
    assert runset.kwargs["filters"] == "Group = 'sweep'"
    panels = grid.kwargs["panels"]
    assert [p.kwargs["table_name"] for p in panels if isinstance(p, fake.WeavePanelSummaryTable)] == ["comparison"]
    media = [p.kwargs["media_keys"] for p in panels if isinstance(p, fake.MediaBrowser)]
    images = sorted(p.name for p in (sweep / "report").glob("*.png"))
    assert sorted(key for keys in media for key in keys) == [f"plots/{i}" for i in images] and len(images) == 3
