"""Cached artifacts (trained models, token hashes, tokenized splits): checked when loaded, never trusted blindly.

A cache file that cannot be loaded or fails its check (truncated, from another version, holding a
pickled object other than tensors and plain data) is reported in one warning line, renamed to
``<name>.damaged-<timestamp>-<pid>`` (kept for inspection, never deleted) and rebuilt by the caller.
Every repair of the current run is listed in ``results.json`` as ``cache_repairs`` (see
:func:`hashee.runs.results.write_results`).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
_REPAIRS: list[dict[str, str]] = []


class DamagedCache(Exception):
    """A cache file was read but its content is not what its loader expects."""


def repairs() -> list[dict[str, str]]:
    """The cache files set aside since the current run started: ``file``, ``reason``, ``set_aside_to``."""
    return [dict(entry) for entry in _REPAIRS]


def clear_repairs() -> None:
    """Start a new run's record of repairs."""
    _REPAIRS.clear()


def torch_load(path: Path) -> Any:
    """``torch.load`` of tensors and plain data only (``weights_only``): anything else is refused."""
    import torch  # not at import time: results.py (imported by the CLI) reads the repairs

    return torch.load(path, map_location="cpu", weights_only=True)


def torch_save(payload: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a reader sees the whole file or none."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def describe_failure(exc: BaseException) -> str:
    """One line saying why a cache file was rejected."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError):
        found = re.search(r"GLOBAL ([\w.]+)", text)
        return f"holds a pickled object other than tensors and plain data ({found.group(1) if found else 'refused'})"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first}"[:300]


def set_aside(path: Path, reason: str, seen: os.stat_result | None = None) -> str | None:
    """Rename a damaged cache file to ``<name>.damaged-<timestamp>-<pid>``, warn in one line, record the repair.

    ``seen``: the file's stat when it was read; if another process has replaced or moved the file
    since, it is left alone (None is returned)."""
    try:
        now = path.stat()
        if seen is not None and (now.st_ino, now.st_size, now.st_mtime_ns) != (seen.st_ino, seen.st_size,
                                                                                 seen.st_mtime_ns):
            return None
        target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        os.replace(path, target)
    except FileNotFoundError:  # another process set it aside first
        return None
    log.warning("damaged cache file %s (%s): set aside as %s, rebuilding it", path, reason, target.name)
    _REPAIRS.append({"file": str(path), "reason": reason, "set_aside_to": str(target)})
    return str(target)


def load_checked(path: Path, load: Callable[[Path], T]) -> T | None:
    """``load(path)`` if the file exists and loads; None if it does not (the caller builds it).

    ``load`` raises on a damaged or incompatible file (any exception; :class:`DamagedCache` for a
    failed check); such a file is set aside (:func:`set_aside`) and None is returned."""
    path = Path(path)
    try:
        seen = path.stat()
    except FileNotFoundError:
        return None
    try:
        return load(path)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises, the cure is the same: rebuild
        set_aside(path, describe_failure(exc), seen)
        return None
