"""The ``hashee-bench`` command: a thin Hydra entry point around :func:`hashee.run.run_experiment`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from hashee.errors import HasheeError
from hashee.results import read_results, write_results

log = logging.getLogger("hashee")


def fail(run_dir: Path, message: str) -> None:
    """Record a failed run in results.json (keeping what was written) and print one line."""
    results = read_results(run_dir) or {"run_dir": str(run_dir)}
    results["error"] = message
    write_results(run_dir, results, status="failed")
    print(f"error: {message}", file=sys.stderr)


@hydra.main(version_base="1.3", config_path="pkg://hashee_conf", config_name="config")
def app(cfg: DictConfig) -> float | None:
    """Train and evaluate one configured method; return the primary test metric (for sweepers)."""
    from hashee.run import run_experiment  # heavy imports after Hydra has parsed the command line

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        return float(run_experiment(cfg, run_dir)["primary"])
    except HasheeError as exc:
        fail(run_dir, str(exc))
        if hydra_cfg.mode == RunMode.RUN:
            sys.exit(2)
        return None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
