"""hashee-scaling end to end on the tiny backbone: every cell measured, efficiency defined, files written."""

from __future__ import annotations

import json
import subprocess
import sys

from hashee.cli.scaling import run


def test_scaling_writes_a_row_per_method_and_cell_and_its_plots(tmp_path):
    rows = run(["backbone=tiny", "data.train_limit=64", "--inputs", "rotten_tomatoes@32", "--batch-sizes", "1,4",
                 "--targets", "2", "--tokens", "100", "--repeats", "1", "--threads", "1", "--out", str(tmp_path)])
    methods = ("hf", "full", "hashee_full_depth", "hashee@2", "full_again")
    assert {(r["batch_size"], r["method"]) for r in rows} == {(b, m) for b in (1, 4) for m in methods}
    hashee = [r for r in rows if r["method"] == "hashee@2"]
    assert all(r["flops_speedup"] > 1.0 and r["efficiency"] > 0 and r["efficiency_paired"] > 0 for r in hashee)
    # the ceiling set by the full model's fixed cost per batch: between no speed-up at all and 1
    assert all(1 / r["flops_speedup"] - 1e-9 <= r["ceiling"] <= 1.0 + 1e-9 for r in hashee)
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


def test_the_console_script_exits_0_on_success(tmp_path):
    args = ["backbone=tiny", "data.train_limit=64", "--inputs", "rotten_tomatoes@32", "--batch-sizes", "2",
            "--targets", "2", "--tokens", "40", "--repeats", "1", "--threads", "1", "--out", str(tmp_path)]
    script = "import sys; from hashee.cli.scaling import main; sys.exit(main())"  # what the console script runs
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "scaling.json").exists()
