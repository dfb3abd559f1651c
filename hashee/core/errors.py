"""Errors that the CLI reports as one clear line (no traceback) and a non-zero exit."""

from __future__ import annotations


class HasheeError(Exception):
    """Base class: a problem the user can fix (bad config, bad data, missing asset)."""


class ConfigError(HasheeError):
    """The configuration asks for something impossible or unknown."""


class DataError(HasheeError):
    """A data file is unreadable or malformed; the message names file, line and problem."""

    def __init__(self, path: str, problem: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


class AssetError(HasheeError):
    """An offline asset package (backbone or embedded dataset) is not installed."""
