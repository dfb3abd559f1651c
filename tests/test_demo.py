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
    rows = [line for line in text.splitlines() if line.startswith("| rotten_tomatoes |")]
    assert len(rows) == 2 and all(line.rstrip().endswith("|") for line in rows)
    assert f"report: {sweep_dir / 'report' / 'report.md'}" in text
    page = (sweep_dir / "report" / "report.html").read_text()
    assert "data:image/png;base64," in page
    assert not re.findall(r'(?:src|href)="(?!data:)', page)  # no external file reference
    plots = [line.split("plot: ")[1] for line in text.splitlines() if line.startswith("plot: ")]
    assert plots and all(Path(p).is_file() for p in plots)
