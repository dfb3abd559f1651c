"""Resumable, validated Hydra multiruns.

- :func:`hashee.runs.identity.config_fingerprint` identifies what a job computes; a job whose run directory
  already holds a complete ``results.json`` with the same config and code fingerprints is skipped, and a job
  another process is running is skipped as ``elsewhere`` (:mod:`hashee.cli.hashee_bench`).
- :class:`SweepCallback` (a Hydra callback, wired in ``conf/config.yaml``) checks every swept
  value before any job starts, logs each job's outcome to ``<sweep dir>/sweep_log.jsonl`` (works
  for launchers that run jobs in other processes), prints which job of how many starts and an
  estimate of the time left, and prints how many of *its own* jobs ran, were skipped, failed or ran
  elsewhere, with their error lines, when the sweep ends (entries carry their sweep process's id, so two
  processes on one directory each count their own). A sweep config with ``report_at_end: true`` (e.g. ``demo``)
  then writes its report and prints the comparison table and the report's paths; ``+sweep=tune``
  (``tune.write_recipe``) writes the best trial's recipe for ``recipe=tuned`` (:mod:`hashee.runs.recipe`).
"""

from __future__ import annotations

import enum
import json
import math
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from hashee.core.errors import ConfigError
from hashee.runs.schema import SPEEDUP_MIRRORS
from hashee.runs.recipe import write_tuned_recipe

SWEEP_LOG = "sweep_log.jsonl"
SWEEP_STARTS = ".sweeps"  # one file per sweep process: when it started and how many jobs it has
SWEEP_ID_ENV = "HASHEE_SWEEP_ID"  # set by the sweep process; its jobs (launchers' workers included) inherit it


class JobOutcome(enum.StrEnum):
    """How a sweep job ended, as the sweep log records it."""

    RAN = "ran"
    SKIPPED = "skipped"  # its results.json was complete for the same configuration (and code)
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    ELSEWHERE = "elsewhere"  # another process holds its lock


COUNTED = (JobOutcome.RAN, JobOutcome.SKIPPED, JobOutcome.FAILED, JobOutcome.ELSEWHERE)  # the sweep's summary line
CHECKED_GROUPS = ("task", "method", "hash", "backbone", "trainer", "callbacks", "logger", "experiment", "demo")


def record_job(sweep_dir: Path, entry: dict[str, Any]) -> None:
    """Append one job outcome, tagged with its sweep process, to the sweep log (one JSON object per line;
    appends are atomic enough)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / SWEEP_LOG, "a") as handle:
        handle.write(json.dumps({**entry, "sweep": os.environ.get(SWEEP_ID_ENV), "time": time.time()}) + "\n")


def read_job_log(sweep_dir: Path, sweep: str | None = None) -> list[dict[str, Any]]:
    """Job outcomes of one sweep process (``sweep``: its id), or every logged outcome (None)."""
    path = sweep_dir / SWEEP_LOG
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in entries if sweep is None or e.get("sweep") == sweep]


def new_sweep_id() -> str:
    """``host-pid-start``: tells apart two sweep processes on one directory."""
    return f"{socket.gethostname()}-{os.getpid()}-{time.time():.3f}"


def sweep_start(sweep_dir: Path, sweep: str | None) -> dict[str, Any]:
    """When a sweep process started and how many jobs it has (``total`` None when unknown)."""
    try:
        return json.loads((sweep_dir / SWEEP_STARTS / f"{sweep}.json").read_text())
    except (OSError, ValueError):
        return {"start": time.time(), "total": None}


def count_outcomes(entries: list[dict[str, Any]]) -> dict[str, int]:
    """How many jobs ran, were skipped, failed or ran elsewhere (another process held their lock)."""
    return {status: sum(e.get("status") == status for e in entries) for status in COUNTED}


def job_count(values: dict[str, list[Any]]) -> int | None:
    """Jobs of a grid sweep: the product of the number of values of every key (None if not a grid)."""
    try:
        return math.prod(len(v) for v in values.values())
    except TypeError:
        return None


def progress_line(job: int, total: int | None, entries: list[dict[str, Any]], now: float, start: float) -> str:
    """``job 3/8 starting; 2 done in 4 min; about 12 min left``: the estimate is the mean time of the jobs
    that ran (each from the previous logged outcome, jobs running one after the other) times the jobs left."""
    done = len(entries)
    line = f"job {job}/{total if total else '?'} starting; {done} done in {_minutes(now - start)}"
    times = [start] + [e["time"] for e in entries]
    timed = [end - begin for begin, end, e in zip(times, times[1:], entries) if e.get("status") == JobOutcome.RAN]
    if total and timed:
        line += f"; about {_minutes(sum(timed) / len(timed) * max(0, total - done))} left"
    return line


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def swept_values(overrides: Iterable[str]) -> dict[str, list[Any]]:
    """Every key of the command-line/sweeper overrides with all the values it will take (intervals left out)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    values: dict[str, list[Any]] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if override.is_sweep_override():
            try:
                values[key] = [v for v in override.sweep_iterator()]
            except HydraException:  # an interval (an Optuna search space): the sweeper samples it, nobody enumerates it
                continue
        elif not override.is_delete():
            values[key] = [override.value()]
    return values


def validate_sweep(values: dict[str, list[Any]], group_options: dict[str, list[str]], depth: int | None) -> None:
    """Raise ConfigError (one line) for an unknown option of a config group or an impossible speed-up."""
    for group in CHECKED_GROUPS:
        known = group_options.get(group)
        for value in values.get(group, []):
            if known is not None and str(value) not in known:
                raise ConfigError(f"unknown {group} '{value}' in the sweep; choose from: {', '.join(sorted(known))}")
    for key in SPEEDUP_MIRRORS:
        if key in values:
            raise ConfigError(f"{key}={','.join(map(str, values[key]))}: the speed-up knob is target_speedup")
    for key in ("target_speedup",):
        for value in values.get(key, []):
            if value is None or str(value) == "null":
                continue
            try:
                speedup = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{key}={value}: not a number") from None
            if speedup < 1.0:
                raise ConfigError(f"{key}={speedup}: a target speed-up must be >= 1")
            if depth is not None and speedup > depth:
                raise ConfigError(f"{key}={speedup}: above the backbone depth ({depth} layers), no exit rule can reach it")


def relaunches_command(strategy: Any) -> bool:
    """Whether a Lightning strategy starts its other ranks by re-running the command line (DDP's default launcher)."""
    name = str(strategy)
    return name.startswith("ddp") and not any(word in name for word in ("spawn", "fork", "notebook"))


def validate_ddp_sweep(values: dict[str, list[Any]], strategy: Any, launcher: str) -> None:
    """Refuse DDP jobs in a multirun whose launcher runs them on one machine: Lightning would start each
    job's other ranks by re-running the whole sweep command. On SLURM the ranks are tasks started by SLURM."""
    if "slurm" in launcher.lower():
        return
    strategies = [str(v) for v in values.get("trainer.strategy", [])] or [str(strategy)]
    if "ddp" in [str(v) for v in values.get("trainer", [])] and "trainer.strategy" not in values:
        strategies.append("ddp")
    if any(relaunches_command(name) for name in strategies):
        raise ConfigError("trainer=ddp in a multirun: Lightning starts the other ranks by re-running the command, "
                          "which would re-run the sweep; run DDP jobs one at a time (without -m) or with "
                          "hydra/launcher=submitit_slurm (hydra.launcher.tasks_per_node = trainer.devices)")


def _sweeper_param_overrides(config: DictConfig) -> list[str]:
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    return [f"{key}={value}" for key, value in params.items()]


def _backbone_depth(config: DictConfig) -> int | None:
    """Number of layers of the configured backbone, read from its config file if available offline."""
    try:
        from transformers import AutoConfig

        from hashee.core.backbone import resolve_path

        overrides = dict(config.backbone.get("config") or {})
        if "num_hidden_layers" in overrides:
            return int(overrides["num_hidden_layers"])
        return int(AutoConfig.from_pretrained(resolve_path(str(config.backbone.path))).num_hidden_layers)
    except Exception:  # noqa: BLE001 - the check is best effort; the job itself reports a bad backbone
        return None


def _group_options(config: DictConfig) -> dict[str, list[str]]:
    """The options of every checked group, on the search path of the run (``hydra.searchpath`` included: a method
    config of another package)."""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    extra = [str(path) for path in OmegaConf.select(config, "hydra.searchpath") or []]
    overrides = [f"hydra.searchpath=[{','.join(extra)}]"] if extra else []
    return {group: loader.get_group_options(group, overrides=overrides) for group in CHECKED_GROUPS}


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra < 1.1
    Callback = object  # type: ignore[assignment,misc]


class SweepCallback(Callback):
    """Validate a multirun before it starts; log every job; print a summary at the end."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        overrides = _sweeper_param_overrides(config) + list(config.hydra.overrides.task)  # command line wins
        try:
            values = swept_values(overrides)
            validate_sweep(values, _group_options(config), _backbone_depth(config))
            validate_ddp_sweep(values, OmegaConf.select(config, "trainer.strategy", default="auto"),
                               str(OmegaConf.select(config, "hydra.launcher._target_", default="")))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        sweep_dir.mkdir(parents=True, exist_ok=True)
        trials = OmegaConf.select(config, "hydra.sweeper.n_trials")  # a sampling sweeper (Optuna) runs n_trials jobs
        total = int(trials) if trials is not None else job_count(values)
        sweep = os.environ[SWEEP_ID_ENV] = new_sweep_id()
        (sweep_dir / SWEEP_STARTS).mkdir(exist_ok=True)
        (sweep_dir / SWEEP_STARTS / f"{sweep}.json").write_text(json.dumps({"start": time.time(), "total": total}))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """One line a person can follow: which job of how many, and about how long the sweep has left."""
        job = OmegaConf.select(config, "hydra.job.num")
        sweep_dir = OmegaConf.select(config, "hydra.sweep.dir")
        if job is None or sweep_dir is None or not str(OmegaConf.select(config, "hydra.mode")).endswith("MULTIRUN"):
            return
        sweep = os.environ.get(SWEEP_ID_ENV)
        started = sweep_start(Path(sweep_dir), sweep)
        entries = read_job_log(Path(sweep_dir), sweep)
        print(f"[sweep] {progress_line(int(job) + 1, started['total'], entries, time.time(), started['start'])}: "
              f"{OmegaConf.select(config, 'hydra.job.override_dirname')}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        entries = read_job_log(sweep_dir, os.environ.get(SWEEP_ID_ENV))  # this process's jobs only
        counts = count_outcomes(entries)
        line = f"sweep {sweep_dir}: {counts['ran']} ran, {counts['skipped']} skipped, {counts['failed']} failed"
        print(line + (f", {counts['elsewhere']} running elsewhere" if counts["elsewhere"] else ""))
        for entry in entries:
            if entry["status"] == JobOutcome.FAILED:
                print(f"  failed {entry.get('job')}: {entry.get('error')}")
        if config.get("report_at_end"):
            print_report(sweep_dir)
        if (config.get("tune") or {}).get("write_recipe"):
            write_recipe(sweep_dir, config)


def write_recipe(sweep_dir: Path, config: DictConfig) -> None:
    """``+sweep=tune``: write the best trial's recipe (on validation) where ``recipe=tuned`` finds it, with the
    command that found it (the search budget and space overrides included)."""
    choices = OmegaConf.select(config, "hydra.runtime.choices") or {}
    search = [o for o in OmegaConf.select(config, "hydra.overrides.hydra") or [] if o.startswith("hydra.sweeper.")]
    command = "hashee-bench -m " + " ".join([*(OmegaConf.select(config, "hydra.overrides.task") or []), *search])
    path = write_tuned_recipe(sweep_dir, choices, command, config.tune.get("recipe_dir"))
    print(f"tuned recipe: {path} (use it with recipe=tuned)" if path else "tuned recipe: no complete trial")


def print_report(sweep_dir: Path) -> None:
    """Write the sweep's report (``<sweep dir>/report``) and print its tables (at equal realized speed-up, then
    every run at its nominal target) and paths (never fatal)."""
    from hashee.reports.build import build_report  # matplotlib: only when a report is asked for
    from hashee.reports.equal_speedup import markdown as equal_speedup_markdown
    from hashee.reports.render import markdown_table

    try:
        report = build_report(sweep_dir, sweep_dir / "report")
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - the runs are written; the report can be rebuilt
        print(f"report not written: {exc}")
        return
    out = Path(report["out"])
    if report.get("code_note"):
        print(report["code_note"])
    equal = equal_speedup_markdown(report["equal_speedup"])
    if equal:
        print(equal + "\n")
    print("## Every run at its nominal target (not comparisons: each at its own realized speed-up)\n")
    print(markdown_table(report["table"]))
    print(f"report: {out / 'report.md'}\nreport: {out / 'report.html'} (self-contained)")
    for image in report["images"]:
        print(f"plot: {out / image}")
