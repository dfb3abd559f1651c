"""Reading task files: TSV, CSV or JSONL (optionally .bz2/.gz/.xz) into :class:`~hashee.tasks.rows.Rows`.

Every problem raises :class:`~hashee.core.errors.DataError` naming the file and, for a row problem, its
1-based line; a bad config raises :class:`~hashee.core.errors.ConfigError`.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import logging
import lzma
import math
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from hashee.core.errors import ConfigError, DataError
from hashee.tasks.config import TaskFields, first_line, text_columns
from hashee.tasks.rows import Rows

log = logging.getLogger(__name__)
FORMATS = ("tsv", "csv", "jsonl")


def read_table_rows(spec: TaskFields, path: Path) -> Rows:
    """Read a TSV/CSV/JSONL file and extract texts, labels (and groups)."""
    fmt = _file_format(spec, path)
    text = _decode(path, read_bytes(path), spec.raw.get("encoding", "utf-8-sig"))
    if fmt == "jsonl":
        header, records = None, _jsonl_records(path, text)
    else:
        header, records = _delimited_records(path, text, fmt, bool(spec.raw.get("header", True)))
    return _extract_rows(spec, path, header, records, fmt)


def _file_format(spec: TaskFields, path: Path) -> str:
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


def read_bytes(path: Path) -> bytes:
    """File content (decompressed for .bz2/.gz/.xz), or DataError."""
    openers: dict[str, Callable[..., Any]] = {".bz2": bz2.open, ".gz": gzip.open, ".xz": lzma.open}
    opener = openers.get(path.suffix.lower(), open)
    try:
        with opener(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError, lzma.LZMAError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
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


def _column_index(spec: TaskFields, path: Path, header: list[str] | None, column: Any) -> int:
    """Position of a column given by name (needs a header) or by index."""
    if isinstance(column, int):
        return column
    if header is None:
        raise ConfigError(f"task {spec.name}: header is false, so columns must be positions (got {column!r})")
    if column not in header:
        raise DataError(str(path), f"missing column {column!r} (header has: {', '.join(header)})", line=1)
    return header.index(column)


def _extract_rows(spec: TaskFields, path: Path, header: list[str] | None, records: list[Record], fmt: str) -> Rows:
    """Texts and label ids from records, dropping ``drop_labels`` rows; row problems name the line."""
    columns = text_columns(spec.name, spec.raw)
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
    convert = label_converter(spec, spec.label_values)
    drop = {str(v).strip() for v in spec.raw.get("drop_labels") or ()}
    rows = Rows(str(path), [], [] if spec.is_pair else None, [], [] if group_column is not None else None)
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
        append_row(rows, values[: len(columns)], convert(raw_label, str(path), line), group)
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


def append_row(rows: Rows, texts: Sequence, label: Any, group: Any = None) -> None:
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


def label_converter(spec: TaskFields, label_values: Sequence[str] | None) -> Callable[[Any, str, int], Any]:
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


def _log_dropped(spec: TaskFields, path: Any, skipped: int, dropped: int) -> None:
    """Say how many rows were skipped as malformed or dropped by label."""
    if skipped:
        log.warning("task %s: skipped %d malformed row(s) in %s", spec.name, skipped, path)
    if dropped:
        log.info("task %s: dropped %d row(s) with labels in drop_labels from %s", spec.name, dropped, path)
