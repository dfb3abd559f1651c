"""Helpers every task module shares: config nodes as plain data, one-line reasons, text columns, and
:class:`TaskFields`, what readers, sources and splits read of a task's spec."""

from __future__ import annotations

from typing import Any, Mapping, Protocol

from omegaconf import DictConfig, ListConfig, OmegaConf

from hashee.core.errors import ConfigError


class TaskFields(Protocol):
    """What readers, sources and splits read of a task: :class:`hashee.tasks.spec.TaskSpec` has it all."""

    name: str
    source: str
    is_regression: bool
    is_pair: bool
    test_split_name: str
    raw: Mapping

    @property
    def label_values(self) -> tuple[str, ...] | None: ...


def plain_config(cfg: Any, what: str) -> Any:
    """A plain-Python copy of a DictConfig/ListConfig/dict/list, with interpolations resolved."""
    if cfg is None:
        return {}
    if isinstance(cfg, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(cfg, resolve=True)
        except Exception as exc:  # MissingMandatoryValue, InterpolationResolutionError, ...
            raise ConfigError(f"{what} config: {first_line(exc)}") from exc
    if isinstance(cfg, Mapping):
        return {key: _plain_value(value, what) for key, value in cfg.items()}
    return cfg


def _plain_value(value: Any, what: str) -> Any:
    """``plain_config`` for a nested value (None stays None)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_plain_value(item, what) for item in value]
    return plain_config(value, what)


def required_str(raw: Mapping, key: str, where: str) -> str:
    """A non-empty string config value, or ConfigError."""
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value


def text_columns(name: str, raw: Mapping) -> list:
    """One or two text columns (names, or positional indices for header-less files)."""
    if raw.get("source") == "bbc_news" and not raw.get("text_columns"):
        return ["text"]
    columns = raw.get("text_columns")
    if isinstance(columns, (str, int)):
        columns = [columns]
    if not columns or len(columns) not in (1, 2):
        raise ConfigError(f"task {name}: text_columns must list one or two columns, got {columns!r}")
    return list(columns)


def first_line(exc: BaseException) -> str:
    """A short one-line reason for an exception."""
    text = str(exc).strip().splitlines()
    reason = text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {reason[:200]}"
