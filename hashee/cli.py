"""The ``hashee-bench`` command: a thin Hydra entry point around :func:`hashee.run.run_experiment`.

In a multirun, a job whose directory already holds complete results for the same configuration
is skipped (so an interrupted sweep resumes), and a failing job is recorded and never stops the
others. A single run that fails on bad config or data prints one line and exits with status 2.

The value returned to a Hydra sweeper (Optuna, Ax, ...) is the primary metric on the *validation*
split (at the chosen operating point): the reported split never chooses anything, tuning included.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from hashee.errors import HasheeError
from hashee.results import read_results, write_results
from hashee.sweep import config_fingerprint, is_complete, record_job

log = logging.getLogger("hashee")


def record(sweep_dir: Path | None, entry: dict) -> None:
    """Log a multirun job's outcome to the sweep log (nothing in a single run; under DDP, rank 0 only)."""
    from hashee.distributed import is_rank_zero  # imports torch: after Hydra has parsed the command line

    if sweep_dir is not None and is_rank_zero():
        record_job(sweep_dir, entry)


def fail(run_dir: Path, message: str) -> None:
    """Record a failed run in results.json (keeping what was written) and print one line."""
    results = read_results(run_dir) or {"run_dir": str(run_dir)}
    results["error"] = message
    write_results(run_dir, results, status="failed")
    print(f"error: {message}", file=sys.stderr)


def sweeper_objective(results: dict) -> float | None:
    """What a sweeper optimises: the validation primary metric, never the reported split's."""
    value = results.get("val_primary")
    return None if value is None else float(value)


@hydra.main(version_base="1.3", config_path="pkg://hashee_conf", config_name="config")
def app(cfg: DictConfig) -> float | None:
    """Train and evaluate one configured method; return the primary *validation* metric (for sweepers)."""
    from hashee.distributed import check_ddp_support  # heavy imports after Hydra has parsed the command line
    from hashee.run import run_experiment

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    sweep_dir = Path(hydra_cfg.sweep.dir) if multirun else None
    job = {"job": hydra_cfg.job.override_dirname or run_dir.name, "run_dir": str(run_dir)}
    fingerprint = config_fingerprint(cfg)
    previous = read_results(run_dir)
    if is_complete(previous, fingerprint):
        log.info("skipping %s: complete results for this configuration exist", run_dir)
        record(sweep_dir, {**job, "status": "skipped"})
        return sweeper_objective(previous)
    try:
        check_ddp_support(cfg)
        results = run_experiment(cfg, run_dir, fingerprint)
    except HasheeError as exc:
        fail(run_dir, str(exc))
        if not multirun:
            sys.exit(2)
        record(sweep_dir, {**job, "status": "failed", "error": str(exc)})
        return None
    except Exception as exc:  # noqa: BLE001 - in a sweep one failing job never stops the others
        if not multirun:
            raise
        log.error("job %s failed:\n%s", job["job"], traceback.format_exc())
        line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        fail(run_dir, line)
        record(sweep_dir, {**job, "status": "failed", "error": line})
        return None
    if "primary" not in results:  # DDP, a rank other than 0: it only trained (rank 0 evaluates)
        return None
    record(sweep_dir, {**job, "status": "ran"})
    return sweeper_objective(results)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
