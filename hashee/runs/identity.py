"""What identifies a run: its configuration and code (fingerprints), and how it is named (label, target, tags).

- :func:`config_fingerprint`: what a job computes (the resolved config without display and cache
  locations); a job whose ``results.json`` is complete with the same fingerprint is skipped.
- :func:`training_fingerprint`: what a training depends on (the config without what only matters after
  training, plus :func:`code_fingerprint`, every source file of ``hashee`` and ``baselines``): the key of a
  trained model that other target speed-ups reuse.
- :data:`METHOD_NAMING`: per method, the config keys its label, tags and requested target are read from.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

# Keys that do not change what a job computes (logging, display, where caches live).
# The recipe nodes only feed trainer.max_epochs, optim.*, data.batch_size (which stay in): hashee/runs/recipe.py.
NON_RESULT_KEYS = ("logger", "progress_bar", "callbacks.progress_bar", "data.cache_dir", "report_at_end",
                   "recipe", "task.recipe", "tune",
                   "eval.keep_freed_memory")  # the allocator: no computed value changes; the record names it
# Keys that only matter after training (the operating point, evaluation) or not at all.
POST_TRAINING_KEYS = NON_RESULT_KEYS + ("target_speedup", "eval", "hashee.target_speedup")
CODE_PACKAGES = ("hashee", "baselines")  # located, not imported (hashee never imports baselines)


def plain_without(cfg: DictConfig | Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The resolved config as plain data without the dotted ``keys`` (``node`` or ``node.key``)."""
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else copy.deepcopy(dict(cfg))
    for dotted in keys:
        node, *rest = dotted.split(".")
        if rest:
            inner = plain.get(node)
            if isinstance(inner, dict):
                inner.pop(rest[0], None)
        else:
            plain.pop(node, None)
    return plain


def config_fingerprint(cfg: DictConfig) -> str:
    """sha256 of the resolved config without the keys that do not affect results."""
    plain = plain_without(cfg, NON_RESULT_KEYS)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:24]


def is_complete(results: dict[str, Any] | None, fingerprint: str) -> bool:
    """Whether stored results are complete and were produced by the same configuration."""
    return bool(results) and results.get("status") == "complete" and results.get("config_fingerprint") == fingerprint


def code_files() -> list[tuple[str, Path]]:
    """``(name, path)`` of every ``.py`` file of :data:`CODE_PACKAGES`, sub-packages included, by name."""
    files = []
    for package in CODE_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(list(spec.submodule_search_locations)[0])
        files += [(f"{package}/{path.relative_to(root).as_posix()}", path) for path in root.rglob("*.py")]
    return sorted(files)


def code_fingerprint() -> str:
    """sha256 of every source file (its path and content): a change of any code file never reuses an older model."""
    digest = hashlib.sha256()
    for name, path in code_files():
        digest.update(name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def training_fingerprint(cfg: DictConfig) -> str:
    """sha256 of what a training depends on: the config without :data:`POST_TRAINING_KEYS`, and the code."""
    payload = json.dumps([plain_without(cfg, POST_TRAINING_KEYS), code_fingerprint()], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class MethodNaming:
    """Where a method's label, tags and requested target speed-up are read from in its resolved config."""

    qualifier: str | None = None  # dotted key that qualifies the label and tags: hashee[<hash.name>], hash:<name>
    target_key: str = "target_speedup"  # dotted key of the requested target speed-up
    has_target: bool = True  # False: no operating point (the full model); its report rows have no target
    reference_label: str | None = None  # a report draws it as a dashed reference line under this label


METHOD_NAMING = {
    "full": MethodNaming(has_target=False, reference_label="full model"),
    "hashee": MethodNaming(qualifier="hash.name", target_key="hashee.target_speedup"),
}


def naming(method: Any) -> MethodNaming:
    """The naming of ``method`` (the default one for methods not listed)."""
    return METHOD_NAMING.get(str(method), MethodNaming())


def select(config: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted key of a (plain or OmegaConf) config, None where a node is missing."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def method_label(method: Any, config: Mapping[str, Any]) -> str:
    """``hashee[frequency]`` for HashEE (the hash matters), the method name otherwise."""
    key = naming(method).qualifier
    if key is None:
        return str(method)
    value = select(config, key)
    return f"{method}[{'?' if value is None else value}]"


def requested_target(method: Any, config: Mapping[str, Any]) -> float | None:
    """The target speed-up a run was asked for (None for a method without one: the full model)."""
    rule = naming(method)
    if not rule.has_target:
        return None
    value = select(config, rule.target_key)
    value = value if value is not None else config.get("target_speedup")
    return None if value is None else float(value)


def run_tags(cfg: Mapping[str, Any]) -> list[str]:
    """Tags that let W&B compare runs: task, backbone, method, the method's qualifier (HashEE: hash), target speed-up, seed."""
    rule = naming(cfg["method"]["name"])
    tags = [f"task:{cfg['task']['name']}", f"backbone:{select(cfg, 'backbone.name')}", f"method:{cfg['method']['name']}",
            f"seed:{cfg['seed']}"]
    if rule.qualifier is not None:
        tags.append(f"{rule.qualifier.split('.')[0]}:{select(cfg, rule.qualifier)}")
    target = select(cfg, rule.target_key)
    if target is not None:
        tags.append(f"speedup:{target}")
    return tags
