"""What a task is: :class:`TaskSpec`, read from its flat config file ``conf/task/<name>.yaml``.

A classification or regression task; generation tasks have their own spec
(:class:`hashee.tasks.generation.GenerationSpec`, chosen by :func:`hashee.tasks.kinds.spec_class`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from omegaconf import OmegaConf

from hashee.core.errors import ConfigError
from hashee.tasks.config import plain_config, required_str, text_columns
from hashee.tasks.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, metric_names
from hashee.tasks.sources import SOURCES

LABEL_TYPES = ("classification", "regression")
TASK_CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "task"


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
    kind: ClassVar[str] = "classification"  # the pipeline that runs it (hashee.tasks.kinds)

    @classmethod
    def from_config(cls, cfg: Any) -> "TaskSpec":
        """Build and validate a spec from the ``task`` config node (DictConfig or dict)."""
        raw = plain_config(cfg, "task")
        if not isinstance(raw, dict):
            raise ConfigError(f"task config must be a mapping, got {type(raw).__name__}")
        name = required_str(raw, "name", "task")
        label_type = raw.get("label_type", "classification")
        if label_type not in LABEL_TYPES:
            raise ConfigError(f"task {name} is a {label_type} task: TaskSpec reads {' and '.join(LABEL_TYPES)} tasks "
                              "(hashee.tasks.kinds.spec_class picks the spec of any task)")
        source = required_str(raw, "source", f"task {name}")
        if source not in SOURCES:
            raise ConfigError(f"task {name}: unknown source {source!r} (known: {', '.join(SOURCES)})")
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
            is_pair=len(text_columns(name, raw)) == 2,
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
