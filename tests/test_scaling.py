"""hashee-scaling end to end on the tiny backbone: every cell measured, efficiency defined, files written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hashee.cli.scaling import run
from hashee.core.cost import efficiency_ceiling


def test_scaling_writes_a_row_per_method_and_cell_and_its_plots(tmp_path):
    rows = run(["backbone=tiny", "data.train_limit=64", "--inputs", "rotten_tomatoes@32", "--batch-sizes", "1,4",
                 "--targets", "2", "--tokens", "100", "--repeats", "1", "--threads", "1", "--out", str(tmp_path)])
    methods = ("hf", "full", "hashee_full_depth", "hashee@2", "full_again")
    assert {(r["batch_size"], r["method"]) for r in rows} == {(b, m) for b in (1, 4) for m in methods}
    hashee = [r for r in rows if r["method"] == "hashee@2"]
    assert all(r["flops_speedup"] > 1.0 and r["efficiency"] > 0 and r["efficiency_paired"] > 0 for r in hashee)
    # the ceiling charges the fixed cost per batch for HashEE's calibrated depth D of the L layers: between 1 (no
    # fixed cost) and 1 / (FLOPs speed-up * D / L) (all of the full model's time fixed)
    assert all(r["num_layers"] == 4 and 1 <= r["layers_run"] <= 4 for r in hashee)
    for r in hashee:
        all_fixed = 1 / (r["flops_speedup"] * r["layers_run"] / r["num_layers"])
        assert min(1.0, all_fixed) - 1e-9 <= r["ceiling"] <= max(1.0, all_fixed) + 1e-9
    assert all(0.0 <= r["fixed_share_of_full"] <= 1.0 for r in rows)
    for row in rows:  # the noise check: the full model timed twice, its ratio and flag on every row of the cell
        again = next(r for r in rows if r["method"] == "full_again" and r["batch_size"] == row["batch_size"])
        full = next(r for r in rows if r["method"] == "full" and r["batch_size"] == row["batch_size"])
        assert row["noise_check"] == again["seconds"] / full["seconds"]
        assert row["noise_flagged"] == (abs(row["noise_check"] - 1) > 0.05)
    saved = json.loads((tmp_path / "scaling.json").read_text())
    assert len(saved["rows"]) == len(rows) and saved["meta"]["threads"] == 1
    assert saved["meta"]["fixed_cost"]["rotten_tomatoes@32"]["rows"] == [1, 2, 4]
    assert (tmp_path / "scaling.md").read_text().count("| rotten_tomatoes@32 |") == 2
    assert (tmp_path / "efficiency_vs_batch.png").exists() and (tmp_path / "efficiency_vs_length.png").exists()


def test_profile_covers_the_full_model_and_each_target_beside_the_cells_fastest_pass(tmp_path):
    from hashee.reports.docs import render

    rows = run(["backbone=tiny", "data.train_limit=64", "--inputs", "rotten_tomatoes@32", "--batch-sizes", "4",
                "--targets", "1.5,2", "--tokens", "60", "--repeats", "1", "--threads", "1", "--profile",
                "--out", str(tmp_path)])
    record = json.loads((tmp_path / "profile.json").read_text())
    by_method = {p["method"]: p for p in record["profiles"]}
    assert set(by_method) == {"full", "hashee@1.5", "hashee@2"}
    for method, entry in by_method.items():
        cell = next(r for r in rows if r["method"] == method)
        assert entry["wall_s"] == cell["seconds"] and entry["batch_size"] == 4
        selfs = [op["self_s"] for op in entry["ops"] if op["op"] != "(other operators)"]
        assert selfs == sorted(selfs, reverse=True)
        assert entry["self_s"] == pytest.approx(sum(op["self_s"] for op in entry["ops"]))
        assert all(op["self_s"] >= 0.001 * entry["self_s"] for op in entry["ops"] if op["op"] != "(other operators)")
        assert any(op["op"] == "aten::addmm" and op["calls"] > 0 for op in entry["ops"])
        assert entry["batches"] == 1 + (rows[0]["examples"] - 1) // 4 and entry["profiled_wall_s"] > 0
    text = render(tmp_path / "profile.json", "profile")
    assert "**rotten_tomatoes@32, batch 4**" in text and "| aten::addmm |" in text
    assert text.count("| fastest unprofiled pass |") == 1 and "hashee@2 s (full / it)" in text


def test_time_outside_operators_is_the_profiled_pass_minus_its_operators_never_the_unprofiled_pass():
    from hashee.reports.scaling import profile_markdown

    def entry(method: str, wall: float, profiled: float | None, self_s: float, calls: int) -> dict:
        base = {"input": "sst2", "batch_size": 32, "method": method, "wall_s": wall, "self_s": self_s,
                "ops": [{"op": "aten::addmm", "calls": calls, "self_s": self_s}]}
        return base if profiled is None else {**base, "profiled_wall_s": profiled, "batches": 10}

    text = profile_markdown({"profiles": [entry("full", 1.9, 2.25, 2.1, 8000), entry("hashee@2", 1.1, 1.40, 1.25, 12000)]})
    assert "| outside operators (profiled pass minus self) | 0.150 | 0.150 (1.00) |" in text
    assert "| operator calls per batch | 800 | 1200 (0.67) |" in text
    assert "| fastest unprofiled pass | 1.900 | 1.100 (1.73) |" in text
    old = profile_markdown({"profiles": [entry("full", 1.9, None, 2.1, 8000), entry("hashee@2", 1.1, None, 1.25, 9000)]})
    assert "| outside operators (profiled pass minus self) | - | - |" in old  # no wall of the profiled pass: no figure


def test_the_console_script_exits_0_on_success(tmp_path):
    args = ["backbone=tiny", "data.train_limit=64", "--inputs", "rotten_tomatoes@32", "--batch-sizes", "2",
            "--targets", "2", "--tokens", "40", "--repeats", "1", "--threads", "1", "--out", str(tmp_path)]
    script = "import sys; from hashee.cli.scaling import main; sys.exit(main())"  # what the console script runs
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "scaling.json").exists()


def test_the_ceiling_charges_the_fixed_cost_of_the_layers_run():
    """Known answers. Full model 10 s, of which 4 s fixed per batch over L = 12 layers, FLOPs speed-up 3:
    all 12 layers run: 4 + 6/3 = 6 s, ceiling 10/6/3; HashEE at depth 6: 4*6/12 + 6/3 = 4 s, ceiling 10/4/3;
    a static model at k = 4: 4*4/12 + 2 = 10/3 s, ceiling exactly 1 (its FLOPs are its layers: L/k = 3)."""
    assert efficiency_ceiling(10.0, 4.0, 3.0) == pytest.approx(10 / 6 / 3)
    assert efficiency_ceiling(10.0, 4.0, 3.0, layers_run=12, num_layers=12) == pytest.approx(10 / 6 / 3)
    assert efficiency_ceiling(10.0, 4.0, 3.0, layers_run=6, num_layers=12) == pytest.approx(10 / 4 / 3)
    assert efficiency_ceiling(10.0, 4.0, 3.0, layers_run=4, num_layers=12) == pytest.approx(1.0)
    # fewer layers run, higher ceiling; no fixed cost: 1 whatever the depth; a negative intercept counts as none
    assert efficiency_ceiling(10.0, 4.0, 3.0, 6, 12) > efficiency_ceiling(10.0, 4.0, 3.0, 9, 12)
    assert efficiency_ceiling(10.0, 0.0, 3.0, 6, 12) == pytest.approx(1.0)
    assert efficiency_ceiling(10.0, -1.0, 3.0, 6, 12) == pytest.approx(1.0)
    # all of the time fixed, half the layers run, FLOPs speed-up 2: time 5 s, measured 2x, ceiling 1
    assert efficiency_ceiling(10.0, 10.0, 2.0, 6, 12) == pytest.approx(1.0)
    # a mean depth over batches (a method whose depth varies) is a fraction of a layer
    assert efficiency_ceiling(10.0, 4.0, 3.0, 7.5, 12) == pytest.approx(10 / (4 * 7.5 / 12 + 2) / 3)


@pytest.mark.parametrize("layers_run,num_layers", [(0, 12), (13, 12), (6, None)])
def test_the_ceiling_refuses_a_depth_outside_the_model(layers_run, num_layers):
    with pytest.raises(ValueError, match="layers_run"):
        efficiency_ceiling(10.0, 4.0, 3.0, layers_run, num_layers)
