"""results.json: the contract every run fills. Written atomically; ``status`` comes last.

``status`` is a :class:`RunStatus`: ``running`` (started; left only by a killed process), ``complete``,
``failed`` (with ``error``, one line) or ``interrupted`` (SIGINT/SIGTERM, with ``error``).
"""

from __future__ import annotations

import enum
import importlib.metadata
import json
import os
import platform
import signal
import tempfile
from pathlib import Path
from typing import Any, Mapping

from hashee.core.cache import clear_repairs, repairs

RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.npz"  # per-example outputs on the reported split, beside results.json (``predictions_file``)
DIFFICULTY_FILE = "difficulty.npz"  # a difficulty run's per-example vectors on predictor-test
ROUGE_FILE = "rouge.npz"  # a generation run's ROUGE of every reported example (``index`` + one array per metric)
PER_EXAMPLE_FILES = (PREDICTIONS_FILE, DIFFICULTY_FILE, ROUGE_FILE)  # what a study keeps beside each results.json


class RunStatus(enum.StrEnum):
    """The closed set of a run's ``status`` (a str: it compares equal to, and is written as, its value)."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


PACKAGES = ("torch", "transformers", "pytorch-lightning", "hydra-core", "omegaconf", "datasets", "torchmetrics", "wandb", "hashee-bench")


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal (SIGINT, SIGTERM): ``results.json`` says ``interrupted``, exit 128 + signal."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")

    def __reduce__(self) -> tuple:  # launchers that run jobs in other processes pickle it
        return type(self), (self.signum,)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine a result (and Python's)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON to a temporary file in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2, default=_jsonable)
        handle.write("\n")
    os.replace(tmp, path)


def write_results(run_dir: Path, results: Mapping[str, Any], status: RunStatus) -> Path:
    """Write ``results.json`` with ``status`` as its last key.

    ``running`` starts a run: its record of cache repairs begins empty, and every later write lists
    the damaged cache files set aside since (``cache_repairs``, see :mod:`hashee.core.cache`).
    Under DDP only rank 0 writes it (on the other ranks this does nothing)."""
    from hashee.core.distributed import is_rank_zero  # imports torch: not at the CLI's import time

    status = RunStatus(status)
    if status is RunStatus.RUNNING:
        clear_repairs()
    path = Path(run_dir) / RESULTS_FILE
    if not is_rank_zero():
        return path
    payload = {k: v for k, v in results.items() if k != "status"}
    if repairs():
        payload["cache_repairs"] = repairs()
    payload["status"] = status.value
    write_json_atomic(path, payload)
    return path


def is_complete(results: Mapping[str, Any] | None) -> bool:
    """Whether a run's results say it completed."""
    return bool(results) and results.get("status") == RunStatus.COMPLETE


def read_results(run_dir: Path) -> dict[str, Any] | None:
    """The results of a run directory, or None if there is none or it is unreadable."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
