"""The typed configuration: a dataclass per config group (Hydra structured configs, stored in the ConfigStore as
``schema/<group>``) that types the knobs, bounds their ranges and closes their string sets.

:func:`check_config` validates a composed config against them before a run starts: OmegaConf types each knob as
Hydra would (``data.batch_size=abc`` is not a whole number), then each range and choice is checked; a bad value is
one :class:`~hashee.core.errors.ConfigError` line naming the key, the value and what is allowed (exit status 2).

The composed config is *validated* against the schemas, not merged with them. A merge would retype values (the
recorded ``target_speedup: 2`` would become ``2.0``) and so change the fingerprint of every finished result, which
would make every sweep re-run its jobs; the config a run records stays the one Hydra composed. A null is allowed
everywhere and left to the code that reads the knob (its own default).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from typing import Any, Optional, get_args, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ValidationError

from hashee.core.errors import ConfigError
from hashee.runs.identity import RESUME_POLICIES


def knob(ge: float | None = None, gt: float | None = None, le: float | None = None) -> Any:
    """A field of a schema: null by default, with its bounds (``ge``, ``gt``, ``le``) in its metadata."""
    return field(default=None, metadata={"ge": ge, "gt": gt, "le": le})


Resume = enum.Enum("Resume", {policy: policy for policy in RESUME_POLICIES})  # identity's resume policies
# The sets below mirror the constants their code checks (hashee.methods.hashee EXITED_TOKEN_MODES and POOLINGS,
# hashee.core.backbone POOLINGS), which import torch and transformers; tests/test_config_schema.py keeps them equal.


class ExitedTokens(enum.Enum):
    attend = "attend"
    drop = "drop"


class HeadPooling(enum.Enum):
    cls = "cls"
    mean = "mean"


class BackbonePooling(enum.Enum):
    auto = "auto"
    cls = "cls"
    mean = "mean"


@dataclass
class RootSchema:
    seed: Optional[int] = knob(ge=0)
    target_speedup: Optional[float] = knob(ge=1.0)
    resume: Optional[Resume] = None


@dataclass
class DataSchema:
    val_size: Optional[float] = knob(gt=0)
    val_limit: Optional[int] = knob(ge=1)
    train_limit: Optional[int] = knob(ge=1)
    test_limit: Optional[int] = knob(ge=1)
    max_length: Optional[int] = knob(ge=2)
    batch_size: Optional[int] = knob(ge=1)
    eval_batch_size: Optional[int] = knob(ge=1)


@dataclass
class RecipeSchema:
    epochs: Optional[int] = knob(ge=1)
    lr: Optional[float] = knob(gt=0)
    batch_size: Optional[int] = knob(ge=1)
    warmup_ratio: Optional[float] = knob(ge=0, le=1)


@dataclass
class OptimSchema:
    lr: Optional[float] = knob(gt=0)
    weight_decay: Optional[float] = knob(ge=0)
    warmup_ratio: Optional[float] = knob(ge=0, le=1)


@dataclass
class HasheeSchema:
    depth: Optional[int] = knob(ge=1)
    num_buckets: Optional[int] = knob(ge=1)
    exited_tokens: Optional[ExitedTokens] = None
    pooling: Optional[HeadPooling] = None


@dataclass
class HashSchema:
    seed: Optional[int] = knob(ge=0)
    mi_bins: Optional[int] = knob(ge=2)
    kmeans_iters: Optional[int] = knob(ge=1)


@dataclass
class MethodSchema:
    """The knobs of the built-in methods, together (a method reads its own; the others ignore them)."""

    patience: Optional[int] = knob(ge=0)
    layers: Optional[int] = knob(ge=1)
    regression_tau: Optional[float] = knob(gt=0)
    entropy_threshold: Optional[float] = knob(ge=0)
    lte_threshold: Optional[float] = None


@dataclass
class BackboneSchema:
    pooling: Optional[BackbonePooling] = None


@dataclass
class TrainerSchema:
    # -1 ("no limit" to Lightning) is refused: the warm-up schedule needs a number of steps
    max_epochs: Optional[int] = knob(ge=1)
    max_steps: Optional[int] = knob(ge=-1)
    num_nodes: Optional[int] = knob(ge=1)
    gradient_clip_val: Optional[float] = knob(ge=0)
    log_every_n_steps: Optional[int] = knob(ge=1)
    num_sanity_val_steps: Optional[int] = knob(ge=-1)
    accumulate_grad_batches: Optional[int] = knob(ge=1)


@dataclass
class EvalSchema:
    warmup_batches: Optional[int] = knob(ge=0)
    timing_repeats: Optional[int] = knob(ge=1)
    threads: Optional[int] = knob(ge=1)


@dataclass
class GenerationSchema:
    max_source_length: Optional[int] = knob(ge=1)
    max_target_length: Optional[int] = knob(ge=1)
    max_new_tokens: Optional[int] = knob(ge=1)
    num_beams: Optional[int] = knob(ge=1)
    length_penalty: Optional[float] = None


SCHEMAS: dict[str, type] = {"": RootSchema, "data": DataSchema, "recipe": RecipeSchema, "optim": OptimSchema,
                            "hashee": HasheeSchema, "hash": HashSchema, "method": MethodSchema,
                            "backbone": BackboneSchema, "trainer": TrainerSchema, "eval": EvalSchema,
                            "generation": GenerationSchema}
# The speed-up knob has one name: these config keys only mirror it (``${target_speedup}``), never set on their own.
SPEEDUP_MIRRORS = ("hashee.target_speedup", "method.target_speedup")


def store_schemas() -> None:
    """Every schema in Hydra's ConfigStore as ``schema/<group>`` (``schema/root`` for the top-level knobs)."""
    store = ConfigStore.instance()
    for group, schema in SCHEMAS.items():
        store.store(group="schema", name=group or "root", node=schema)


def allowed(kind: Any) -> str:
    """What a field of type ``kind`` accepts, as a refusal says it."""
    base = next((a for a in get_args(kind) if a is not type(None)), kind)
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return "choose from " + ", ".join(m.value for m in base)
    return "not a whole number" if base is int else "not a number"


def out_of_range(value: float, meta: dict[str, Any]) -> str | None:
    """Why ``value`` is outside the field's bounds (None when inside)."""
    if meta.get("ge") is not None and value < meta["ge"]:
        return f"must be >= {meta['ge']:g}"
    if meta.get("gt") is not None and value <= meta["gt"]:
        return f"must be > {meta['gt']:g}"
    if meta.get("le") is not None and value > meta["le"]:
        return f"must be <= {meta['le']:g}"
    return None


def check_group(cfg: DictConfig, group: str, schema: type) -> None:
    """The knobs of one group that the config sets, typed and bounded by ``schema``."""
    node = cfg if not group else OmegaConf.select(cfg, group)
    if not isinstance(node, DictConfig):
        return
    hints, typed_schema = get_type_hints(schema), OmegaConf.structured(schema)
    for spec in dataclasses.fields(schema):
        if spec.name not in node:
            continue
        key, value = f"{group}.{spec.name}" if group else spec.name, node[spec.name]
        if value is None:
            continue
        try:
            typed = OmegaConf.merge(typed_schema, {spec.name: value})[spec.name]
        except ValidationError:
            raise ConfigError(f"{key}={value}: {allowed(hints[spec.name])}") from None
        if isinstance(typed, float) and not math.isfinite(typed):
            raise ConfigError(f"{key}={value}: not a number")
        why = out_of_range(typed, dict(spec.metadata)) if isinstance(typed, (int, float)) else None
        if why:
            raise ConfigError(f"{key}={value}: {why}")


def check_speedup_knob(cfg: DictConfig) -> None:
    """``target_speedup`` is the one speed-up knob: a mirror set to another value is refused."""
    for key in SPEEDUP_MIRRORS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value != cfg.get("target_speedup"):
            raise ConfigError(f"{key}={value}: the speed-up knob is target_speedup (set target_speedup={value})")


def check_config(cfg: DictConfig) -> None:
    """Every typed knob of a composed config, and the one speed-up knob; a ConfigError line for the first bad one."""
    for group, schema in SCHEMAS.items():
        check_group(cfg, group, schema)
    check_speedup_knob(cfg)
