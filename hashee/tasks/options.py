"""The ``data`` config node as read by the task loaders."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from hashee.core.errors import ConfigError
from hashee.tasks.config import plain_config


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
        raw = plain_config(cfg, "data") or {}
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
