"""Load a classification or regression task: official splits, validation carved from train, limits, Datasets.

:func:`load_task_data` turns a spec plus the ``data`` config node into three ``datasets.Dataset`` splits
with columns ``text_a``, ``text_b`` (pair tasks only) and ``label`` (int64 class id, or float32 for
regression):

* ``test``  -- the REPORTED split (see :mod:`hashee.tasks.sources`), the same whatever ``data.seed`` is;
* ``val``   -- carved out of the official TRAIN split with ``data.seed`` (stratified for
  classification, by group when the task names a ``group_column``);
* ``train`` -- the rest of the official train split, optionally cut to ``data.train_limit``.

The test split is never read to build train or val. Every data problem raises
:class:`~hashee.core.errors.DataError` naming the file (and the 1-based line for a row problem);
every bad config raises :class:`~hashee.core.errors.ConfigError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import datasets

from hashee.tasks.options import DataOptions
from hashee.tasks.rows import Rows
from hashee.tasks.sources import official_splits
from hashee.tasks.spec import TaskSpec
from hashee.tasks.splits import carve_validation, require_rows, strata, subset_indices

log = logging.getLogger(__name__)


@dataclass
class TaskData:
    """The three splits of a task, ready for tokenization."""

    spec: TaskSpec
    train: datasets.Dataset
    val: datasets.Dataset
    test: datasets.Dataset


def load_task_data(spec: TaskSpec, data_cfg: Any) -> TaskData:
    """Load the official splits, carve val from train, apply limits, return Datasets."""
    opts = DataOptions.from_config(data_cfg)
    train, test = official_splits(spec, opts)
    require_rows(train, "train")
    require_rows(test, "test")
    train, val = carve_validation(spec, train, opts)
    if opts.val_limit is not None:
        val = val.take(subset_indices(strata(spec, val), len(val), opts.val_limit, opts.seed))
    if opts.train_limit is not None:
        train = train.take(subset_indices(strata(spec, train), len(train), opts.train_limit, opts.seed))
    if opts.test_limit is not None:
        test = test.take(range(min(opts.test_limit, len(test))))
    log.info("task %s: %d train / %d val / %d %s", spec.name, len(train), len(val), len(test), spec.test_split_name)
    return TaskData(spec, to_dataset(spec, train), to_dataset(spec, val), to_dataset(spec, test))


def to_dataset(spec: TaskSpec, rows: Rows) -> datasets.Dataset:
    """A Dataset with ``text_a`` [, ``text_b``], ``label`` (int64 or float32)."""
    features = {"text_a": datasets.Value("string")}
    columns: dict[str, list] = {"text_a": rows.text_a}
    if spec.is_pair:
        features["text_b"] = datasets.Value("string")
        columns["text_b"] = rows.text_b or []
    features["label"] = datasets.Value("float32" if spec.is_regression else "int64")
    columns["label"] = rows.labels
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))
