"""The ``hashee-bench`` command: a thin Hydra entry point around :func:`hashee.experiments.dispatch.run_experiment`.

In a multirun, a job whose directory already holds complete results for the same configuration and
code is skipped (so an interrupted sweep resumes; ``resume=config`` reuses results of other code too),
a job another process is running is skipped as ``elsewhere`` (one job, one runner), and a failing job is
recorded and never stops the others. A single run that fails on bad config or data (a knob of the wrong type or out of its range:
:mod:`hashee.runs.schema`) prints one line and exits with status 2; any other failure is recorded in results.json
(``failed`` with its line) before the traceback, and SIGINT/SIGTERM end a run ``interrupted``
(exit 130/143): only a killed process leaves ``running``.

The value returned to a Hydra sweeper (Optuna, Ax, ...) is the primary metric on the *validation*
split (at the chosen operating point): the reported split never chooses anything, tuning included.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from hashee.cli.sweep import JobOutcome, record_job
from hashee.core.errors import HasheeError
from hashee.runs.identity import config_fingerprint, reusable
from hashee.runs.lock import describe_holder, holder, job_lock
from hashee.runs.recipe import check_recipe
from hashee.runs.results import Interrupted, RunStatus, read_results, write_results
from hashee.runs.schema import check_config, store_schemas

log = logging.getLogger("hashee")

def record(sweep_dir: Path | None, entry: dict) -> None:
    """Log a multirun job's outcome to the sweep log (nothing in a single run; under DDP, rank 0 only)."""
    from hashee.core.distributed import is_rank_zero  # imports torch: after Hydra has parsed the command line

    if sweep_dir is not None and is_rank_zero():
        record_job(sweep_dir, entry)


def end_run(run_dir: Path, status: RunStatus, message: str) -> None:
    """Record how a run ended (``failed`` or ``interrupted``) in results.json, keeping what was written."""
    results = read_results(run_dir) or {"run_dir": str(run_dir)}
    results["error"] = message
    write_results(run_dir, results, status=status)


def fail(run_dir: Path, message: str) -> None:
    """Record a failed run in results.json (keeping what was written) and print one line."""
    end_run(run_dir, RunStatus.FAILED, message)
    print(f"error: {message}", file=sys.stderr)


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``: what results.json and the sweep log keep of an exception."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _raise_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`Interrupted` (as SIGINT raises KeyboardInterrupt) while a run is in progress."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def sweeper_objective(results: dict) -> float | None:
    """What a sweeper optimises: the validation primary metric, never the reported split's."""
    value = results.get("val_primary")
    return None if value is None else float(value)


def register_tune_sampler() -> None:
    """``hydra/sweeper/sampler=default_first`` (conf/sweep/tune.yaml: trial 0 is the starting recipe, see
    :mod:`hashee.runs.sampler`), when the ``tune`` extra is installed. The Optuna sweeper types its sampler
    node, so the node's keys are declared here as its config class's subclass."""
    try:
        from hydra_plugins.hydra_optuna_sweeper.config import SamplerConfig
    except ImportError:
        return

    @dataclass
    class DefaultFirstSamplerConfig(SamplerConfig):
        _target_: str = "hashee.runs.sampler.DefaultFirstSampler"
        base: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0})
        first: dict[str, Any] = field(default_factory=dict)

    ConfigStore.instance().store(group="hydra/sweeper/sampler", name="default_first", node=DefaultFirstSamplerConfig,
                                 provider="hashee-bench")


register_tune_sampler()
store_schemas()  # schema/<group>: the typed knobs (hashee/runs/schema.py)


@hydra.main(version_base="1.3", config_path="pkg://hashee_conf", config_name="config")
def app(cfg: DictConfig) -> float | None:
    """Train and evaluate one configured method; return the primary *validation* metric (for sweepers).

    In a multirun the job runs under its lock (:mod:`hashee.runs.lock`): a job another process runs now is
    skipped here and logged ``elsewhere``."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    sweep_dir = Path(hydra_cfg.sweep.dir) if multirun else None
    job = {"job": hydra_cfg.job.override_dirname or run_dir.name, "run_dir": str(run_dir)}
    fingerprint = config_fingerprint(cfg)
    finished = finished_results(cfg, run_dir, fingerprint, job["job"])
    if finished is not None:
        record(sweep_dir, {**job, "status": JobOutcome.SKIPPED})
        return sweeper_objective(finished)
    if not multirun:
        return run_job(cfg, run_dir, fingerprint, job, sweep_dir)
    with job_lock(run_dir) as lock:
        if lock is None:  # another process (a second sweep on this directory) runs this job now
            where = describe_holder(holder(run_dir))
            print(f"[sweep] {job['job']}: running elsewhere ({where}), skipped here", flush=True)
            record(sweep_dir, {**job, "status": JobOutcome.ELSEWHERE, "holder": where})
            return None
        finished = finished_results(cfg, run_dir, fingerprint, job["job"], quiet=True)  # finished while we waited
        if finished is not None:
            record(sweep_dir, {**job, "status": JobOutcome.SKIPPED})
            return sweeper_objective(finished)
        return run_job(cfg, run_dir, fingerprint, job, sweep_dir)


def finished_results(cfg: DictConfig, run_dir: Path, fingerprint: str, job: str, quiet: bool = False) -> dict | None:
    """The complete results of this job when they can be reused (same config, and same code unless
    ``resume=config``); a job whose results came from other code is re-run, with one line that says so."""
    previous = read_results(run_dir)
    try:
        reuse, why = reusable(previous, fingerprint, str(cfg.get("resume") or "code"))
    except HasheeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    if reuse:
        log.info("skipping %s: complete results for this configuration and code exist", run_dir)
        return previous
    if why and not quiet:
        print(f"[sweep] {job}: {why}", flush=True)
    return None


def run_job(cfg: DictConfig, run_dir: Path, fingerprint: str, job: dict, sweep_dir: Path | None) -> float | None:
    """Run one job and record its outcome; one line and exit 2 for a bad config or data in a single run."""
    from hashee.experiments.dispatch import (  # heavy: after Hydra parsed the command line
        check_ddp_support,
        run_experiment,
    )

    hydra_cfg = HydraConfig.get()
    multirun = sweep_dir is not None
    try:
        with sigterm_interrupts():
            check_config(cfg)
            check_recipe(cfg, hydra_cfg.runtime.choices)
            check_ddp_support(cfg)
            results = run_experiment(cfg, run_dir, fingerprint)
    except HasheeError as exc:
        fail(run_dir, str(exc))
        if not multirun:
            sys.exit(2)
        record(sweep_dir, {**job, "status": JobOutcome.FAILED, "error": str(exc)})
        return None
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM (Interrupted): this run and the sweep stop
        stopped = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        end_run(run_dir, RunStatus.INTERRUPTED, str(stopped))
        record(sweep_dir, {**job, "status": JobOutcome.INTERRUPTED, "error": str(stopped)})
        print(f"{run_dir}: {stopped}", file=sys.stderr)
        sys.exit(stopped.exit_code)
    except SystemExit as exc:  # an exit from inside the run (not ours: those come after the run)
        if exc.code not in (0, None):
            end_run(run_dir, RunStatus.FAILED, f"exited with status {exc.code}")
        raise
    except Exception as exc:  # noqa: BLE001 - in a sweep one failing job never stops the others
        line = one_line(exc)
        if not multirun:
            end_run(run_dir, RunStatus.FAILED, line)
            raise
        log.error("job %s failed:\n%s", job["job"], traceback.format_exc())
        fail(run_dir, line)
        record(sweep_dir, {**job, "status": JobOutcome.FAILED, "error": line})
        return None
    if "primary" not in results:  # DDP, a rank other than 0: it only trained (rank 0 evaluates)
        return None
    record(sweep_dir, {**job, "status": JobOutcome.RAN})
    return sweeper_objective(results)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
