"""Splits from the Hugging Face hub (``datasets.load_dataset``), labels mapped onto the task's own ids."""

from __future__ import annotations

from typing import Mapping

import datasets

from hashee.core.errors import ConfigError, DataError
from hashee.tasks.config import TaskFields, first_line, text_columns
from hashee.tasks.options import DataOptions
from hashee.tasks.readers import append_row, label_converter
from hashee.tasks.rows import Rows


def hub_splits(spec: TaskFields, opts: DataOptions, local_hint: str | None = None) -> tuple[Rows, Rows]:
    """Train/test through ``datasets.load_dataset`` (ConfigError if unreachable).

    ``local_hint``: how to point the task at a local copy instead (None: a hub-only task)."""
    hub = spec.raw.get("hub")
    if not hub or not hub.get("path"):
        raise ConfigError(f"task {spec.name}: {local_hint or 'set task.files.train=PATH'}; this task has no hub fallback")
    train = _hub_split(spec, hub, hub.get("train", "train"), opts, local_hint)
    return train, _hub_split(spec, hub, hub.get("test", "test"), opts, local_hint)


def _hub_split(spec: TaskFields, hub: Mapping, split: str, opts: DataOptions, local_hint: str | None) -> Rows:
    """One split from the hub, labels mapped onto the same ids as the local files."""
    try:
        ds = datasets.load_dataset(hub["path"], hub.get("name"), split=split, cache_dir=opts.cache_dir)
    except Exception as exc:  # offline, unreachable, unknown dataset: all one clear line
        local = f"no local copy ({local_hint}) and " if local_hint else ""
        raise ConfigError(
            f"task {spec.name}: {local}the Hugging Face hub could not be reached for "
            f"{_hub_id(hub, split)}: {first_line(exc)}"
        ) from exc
    origin = _hub_id(hub, split)
    columns = list(hub.get("text_columns") or text_columns(spec.name, spec.raw))
    label_column = hub.get("label_column") or spec.raw.get("label_column", "label")
    for column in columns + [label_column]:
        if column not in ds.column_names:
            raise DataError(origin, f"missing column {column!r} (columns: {', '.join(ds.column_names)})")
    hub_values = hub.get("label_values") or spec.label_values
    convert = label_converter(spec, [str(v).strip() for v in hub_values] if hub_values else None)
    drop = {str(v).strip() for v in hub.get("drop_labels", spec.raw.get("drop_labels")) or ()}
    rows = Rows(origin, [], [] if spec.is_pair else None, [])
    table = ds.select_columns(list(dict.fromkeys(columns + [label_column])))[:]  # dict of plain lists (fast)
    texts = [table[column] for column in columns]
    for i, raw_label in enumerate(table[label_column]):
        if str(raw_label).strip() in drop:
            continue
        append_row(rows, [column[i] for column in texts], convert(raw_label, origin, i + 1))
    return rows


def _hub_id(hub: Mapping, split: str) -> str:
    """``hf://path/name[split]``, used in messages."""
    name = f"/{hub['name']}" if hub.get("name") else ""
    return f"hf://{hub['path']}{name}[{split}]"
