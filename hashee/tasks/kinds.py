"""The kinds of task, by ``label_type``: which spec reads a task's config, hence which pipeline runs it.

``classification`` and ``regression`` tasks are read by :class:`~hashee.tasks.spec.TaskSpec` (kind
``classification``: the encoder with a classifier); ``generation`` tasks by
:class:`~hashee.tasks.generation.GenerationSpec` (kind ``generation``: an encoder-decoder).
"""

from __future__ import annotations

from typing import Any

from hashee.core.errors import ConfigError
from hashee.tasks.generation import GenerationSpec
from hashee.tasks.spec import TaskSpec

SPECS: dict[str, type[TaskSpec] | type[GenerationSpec]] = {
    "classification": TaskSpec,
    "regression": TaskSpec,
    "generation": GenerationSpec,
}


def spec_class(task_cfg: Any) -> type[TaskSpec] | type[GenerationSpec]:
    """The spec class that reads a ``task`` config node (its ``kind`` names the pipeline)."""
    label_type = str(task_cfg.get("label_type", "classification"))
    if label_type not in SPECS:
        raise ConfigError(f"task {task_cfg.get('name')}: label_type must be one of {tuple(SPECS)}, got {label_type!r}")
    return SPECS[label_type]


def task_kind(task_cfg: Any) -> str:
    """``classification`` or ``generation``: the pipeline a ``task`` config node needs."""
    return spec_class(task_cfg).kind
