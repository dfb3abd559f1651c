"""hashee-scaling end to end on the tiny backbone: every cell measured, efficiency defined, files written."""

from __future__ import annotations

import json

from hashee.cli.scaling import main


def test_scaling_writes_a_row_per_method_and_cell_and_its_plots(tmp_path):
    rows = main(["backbone=tiny", "data.train_limit=64", "--inputs", "rotten_tomatoes@32", "--batch-sizes", "1,4",
                 "--targets", "2", "--tokens", "100", "--repeats", "1", "--threads", "1", "--out", str(tmp_path)])
    assert {(r["batch_size"], r["method"]) for r in rows} == {(b, m) for b in (1, 4) for m in ("hf", "full", "hashee@2")}
    hashee = [r for r in rows if r["method"] == "hashee@2"]
    assert all(r["flops_speedup"] > 1.0 and r["efficiency"] > 0 for r in hashee)
    saved = json.loads((tmp_path / "scaling.json").read_text())
    assert len(saved["rows"]) == len(rows) and saved["meta"]["threads"] == 1
    assert (tmp_path / "scaling.md").read_text().count("| rotten_tomatoes@32 |") == 2
    assert (tmp_path / "efficiency_vs_batch.png").exists() and (tmp_path / "efficiency_vs_length.png").exists()
