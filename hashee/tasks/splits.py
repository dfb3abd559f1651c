"""Seeded splits: validation carved out of train (stratified, or by group), the reported test split carved
out of a one-pool task with its own ``split_seed``, and seeded subsets."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from hashee.core.errors import ConfigError, DataError
from hashee.tasks.config import TaskFields
from hashee.tasks.options import DataOptions
from hashee.tasks.rows import Rows


def require_rows(rows: Rows, split: str) -> None:
    """DataError when a split has no usable rows."""
    if len(rows) == 0:
        raise DataError(rows.origin, f"split '{split}' is empty (no usable rows)")


def strata(spec: TaskFields, rows: Rows) -> list | None:
    """Labels to stratify on (classification), or None (regression)."""
    return None if spec.is_regression else rows.labels


def carve_validation(spec: TaskFields, train: Rows, opts: DataOptions) -> tuple[Rows, Rows]:
    """``(train, val)``: val carved from official train with ``data.seed``."""
    keep, held = split_rows(spec, train, opts.val_size, opts.seed, "val")
    return train.take(keep), train.take(held)


def carve_test(spec: TaskFields, pool: Rows) -> tuple[Rows, Rows]:
    """``(train, test)`` from a one-pool task, with the task's fixed ``split_seed``."""
    require_rows(pool, "train")
    size = spec.raw.get("test_size")
    if not isinstance(size, (int, float)) or size <= 0:
        raise ConfigError(f"task {spec.name}: needs test_size > 0 to carve its reported test split")
    keep, held = split_rows(spec, pool, float(size), int(spec.raw.get("split_seed", 0)), "test")
    return pool.take(keep), pool.take(held)


def split_rows(spec: TaskFields, rows: Rows, size: float, seed: int, held_name: str) -> tuple[list[int], list[int]]:
    """Indices ``(kept, held_out)``, by group when rows have groups, else (stratified) by row."""
    if len(rows) < 2:
        raise DataError(rows.origin, f"only {len(rows)} row(s): too few to carve a '{held_name}' split")
    if rows.groups is not None:
        keep, held = group_split_indices(rows.groups, size, seed)
    else:
        keep, held = split_indices(strata(spec, rows), len(rows), size, seed)
    if not held or not keep:
        raise DataError(rows.origin, f"split '{held_name}' would be empty or leave nothing; adjust its size")
    return keep, held


def _held_count(n: int, size: float) -> int:
    """How many of ``n`` rows to hold out: a fraction if ``size`` < 1, else a count."""
    count = round(size * n) if size < 1 else int(size)
    return min(max(count, 1), n - 1)


def split_indices(labels: Sequence | None, n: int, size: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded ``(kept, held)`` sorted indices; stratified on ``labels`` when given and possible."""
    held_count = _held_count(n, size)
    indices = np.arange(n)
    try:
        keep, held = train_test_split(indices, test_size=held_count, random_state=seed, stratify=labels)
    except ValueError:  # a class too small to stratify: fall back to a plain seeded split
        keep, held = train_test_split(indices, test_size=held_count, random_state=seed)
    return sorted(int(i) for i in keep), sorted(int(i) for i in held)


def subset_indices(labels: Sequence | None, total: int, n: int, seed: int) -> list[int]:
    """Sorted indices of a seeded subset of ``n`` of ``total`` rows, stratified on ``labels`` if given."""
    if n >= total:
        return list(range(total))
    indices = np.arange(total)
    try:
        chosen, _ = train_test_split(indices, train_size=n, random_state=seed, stratify=labels)
    except ValueError:  # a class too small to stratify
        chosen, _ = train_test_split(indices, train_size=n, random_state=seed)
    return sorted(int(i) for i in chosen)


def group_split_indices(groups: Sequence, size: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded ``(kept, held)`` sorted indices such that no group is on both sides.

    Groups are shuffled with ``seed`` and held out whole until the held rows reach the
    target (a fraction of rows if ``size`` < 1, else a row count).
    """
    unique = sorted(set(groups))
    if len(unique) < 2:
        return list(range(len(groups))), []
    target = _held_count(len(groups), size)
    counts: dict = {}
    for group in groups:
        counts[group] = counts.get(group, 0) + 1
    order = np.random.RandomState(seed).permutation(len(unique))
    held_groups: set = set()
    held_rows = 0
    for position in order[:-1]:  # always leave at least one group kept
        if held_rows >= target:
            break
        held_groups.add(unique[position])
        held_rows += counts[unique[position]]
    keep = [i for i, g in enumerate(groups) if g not in held_groups]
    held = [i for i, g in enumerate(groups) if g in held_groups]
    return keep, held
