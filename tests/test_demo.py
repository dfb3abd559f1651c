"""The main command's pieces: progress lines, the end-of-sweep report, tables that never wrap in a log."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

from hashee.cli.sweep import job_count, progress_line
from hashee.runs.summary import print_summary


def test_progress_line_counts_jobs_and_estimates_the_time_left():
    entries = [{"status": "ran", "time": 160.0}, {"status": "skipped", "time": 161.0}, {"status": "ran", "time": 281.0}]
    line = progress_line(4, 8, entries, now=290.0, start=100.0)
    assert line.startswith("job 4/8 starting; 3 done in 3.2 min")
    assert line.endswith("about 7.5 min left")  # mean of the ran jobs (60 s, 120 s) x 5 jobs left
    assert progress_line(1, None, [], now=5.0, start=0.0) == "job 1/? starting; 0 done in 5 s"
    assert job_count({"method": ["full", "hashee"], "target_speedup": [1.5, 2, 3], "seed": [0]}) == 6


def test_the_summary_table_is_one_line_per_row_in_a_log(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stdout", log)
    results = {"task": "rotten_tomatoes", "method": "full", "seed": 0, "run_dir": "/x", "metrics": {"accuracy": 0.86},
               "val_metrics": {"accuracy": 0.88}, "cost": {"flops_speedup": 1.0}}
    print_summary(results)
    assert "rotten_tomatoes / full (seed 0)" in log.getvalue()


def test_a_sweep_with_report_at_end_prints_its_table_and_a_self_contained_report(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HASHEE_CACHE": str(tmp_path / "cache")}
    sweep_dir = tmp_path / "demo"
    cmd = [sys.executable, "-m", "hashee.cli", "-m", "+sweep=smoke", "method=full,hashee", "target_speedup=2",
           "report_at_end=true", f"hydra.sweep.dir={sweep_dir}"]
    with open(tmp_path / "log.txt", "w") as log:  # stdout is a file, as with `make run > log.txt`
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=600)
    text = (tmp_path / "log.txt").read_text()
    assert done.returncode == 0, text[-2000:]
    assert "[sweep] job 1/2 starting" in text and "[sweep] job 2/2 starting" in text
    nominal = text.split("## Every run at its nominal target")[1]
    rows = [line for line in nominal.splitlines() if line.startswith("| rotten_tomatoes |")]
    assert len(rows) == 2 and all(line.rstrip().endswith("|") for line in rows)
    assert f"report: {sweep_dir / 'report' / 'report.md'}" in text
    page = (sweep_dir / "report" / "report.html").read_text()
    assert "data:image/png;base64," in page
    assert not re.findall(r'(?:src|href)="(?!data:)', page)  # no external file reference
    plots = [line.split("plot: ")[1] for line in text.splitlines() if line.startswith("plot: ")]
    assert plots and all(Path(p).is_file() for p in plots)


def test_the_main_command_compares_hashee_deebert_and_static_at_equal_realized_speedup(tmp_path):
    """``+sweep=demo`` on the tiny backbone (its real budget is measured on the 2-core machine: docs/results.md):
    six jobs, a curve for every method with an operating point, and a printed table at equal realized speed-up with
    HashEE, DeeBERT (a baseline of the paper) and static truncation, then every run at its nominal target, one
    line per row, and the report's paths."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HASHEE_CACHE": str(tmp_path / "cache")}
    sweep_dir = tmp_path / "demo"
    cmd = [sys.executable, "-m", "hashee.cli", "-m", "+sweep=demo", "backbone=tiny", "logger=none", "progress_bar=false",
           "data.train_limit=96", "data.val_limit=48", "data.test_limit=64", "data.max_length=48", "recipe.epochs=1",
           "eval.timing_repeats=1", "eval.warmup_batches=1", f"hydra.sweep.dir={sweep_dir}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout
    assert "[sweep] job 6/6 starting" in text and f"sweep {sweep_dir}: 6 ran, 0 skipped, 0 failed" in text
    equal = text.split("## At equal realized speed-up")[1].split("## Every run at its nominal target")[0]
    rows = [line.split(" | ") for line in equal.splitlines() if line.startswith("| rotten_tomatoes |")]
    methods = {row[2] for row in rows}
    assert {"hashee[frequency]", "deebert", "static"} <= methods and "full" not in methods
    hashee_points = {row[1] for row in rows if row[2] == "hashee[frequency]" and row[-1] != "not reached |"}
    assert hashee_points and {"1.50", "2.00", "3.00"} <= {row[1] for row in rows}
    nominal = [line for line in text.split("## Every run at its nominal target")[1].splitlines()
               if line.startswith("| rotten_tomatoes |")]
    assert {line.split(" | ")[1] for line in nominal} == {"full", "hashee[frequency]", "static", "deebert"}
    assert all(line.rstrip().endswith("|") for line in nominal) and "± 0.0000" not in text
    assert f"report: {sweep_dir / 'report' / 'report.md'}" in text
