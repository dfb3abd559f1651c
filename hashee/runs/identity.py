"""What identifies a run: its configuration and code (fingerprints), and how it is named (label, target, tags).

- :func:`config_fingerprint`: what a job computes (the resolved config without display and cache
  locations); a job whose ``results.json`` is complete with the same fingerprint is skipped.
- :func:`training_fingerprint`: what a training depends on (the config without what only matters after
  training, plus :func:`code_fingerprint`, every source file of ``hashee`` and ``baselines``): the key of a
  trained model that other target speed-ups reuse.
- :func:`code_version`: which code produced a result (package version, git commit, dirty tree and a hash of
  its diff, :func:`code_fingerprint`), recorded in every ``results.json`` as ``code``; a sweep reuses a finished
  job only when its config *and* code fingerprints match (:func:`reusable`), unless ``resume=config``.
- :data:`METHOD_NAMING`: per method, the config keys its label, tags and requested target are read from.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import importlib.util
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from hashee.core.errors import ConfigError

# Keys that do not change what a job computes (logging, display, where caches live).
# The recipe nodes only feed trainer.max_epochs, optim.*, data.batch_size (which stay in): hashee/runs/recipe.py.
NON_RESULT_KEYS = ("logger", "progress_bar", "callbacks.progress_bar", "data.cache_dir", "report_at_end", "resume",
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


# Knobs added after runs were recorded, whose null default computes what the runs computed before them: left
# out of the fingerprint while null, so a recorded configuration keeps its fingerprint.
LATER_NULL_KEYS = ("hashee.pooling",)


def config_fingerprint(cfg: DictConfig) -> str:
    """sha256 of the resolved config without the keys that do not affect results."""
    plain = plain_without(cfg, NON_RESULT_KEYS)
    plain = plain_without(plain, [key for key in LATER_NULL_KEYS if select(plain, key) is None])
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:24]


def is_complete(results: dict[str, Any] | None, fingerprint: str) -> bool:
    """Whether stored results are complete and were produced by the same configuration."""
    return bool(results) and results.get("status") == "complete" and results.get("config_fingerprint") == fingerprint


RESUME_POLICIES = ("code", "config")  # ``resume``: reuse a finished job on config and code, or on config alone


def reusable(results: dict[str, Any] | None, fingerprint: str, policy: str = "code") -> tuple[bool, str | None]:
    """Whether a finished job can be reused, and if not because of the code, the one line that says so.

    ``policy`` ``code`` (the default) reuses complete results of the same configuration *and* code
    (:func:`code_fingerprint`); ``config`` reuses them on the configuration alone (for a change known not
    to matter)."""
    if policy not in RESUME_POLICIES:
        raise ConfigError(f"resume={policy}: choose from {', '.join(RESUME_POLICIES)}")
    if not is_complete(results, fingerprint):
        return False, None
    if policy == "config":
        return True, None
    recorded = (results.get("code") or {}).get("fingerprint")
    current = code_fingerprint()
    if recorded == current:
        return True, None
    return False, f"its results came from other code (code {recorded or 'not recorded'}, now {current}): re-running"


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


def package_root() -> Path | None:
    """The folder that holds the ``hashee`` package (a git checkout for an editable install)."""
    spec = importlib.util.find_spec("hashee")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).parent


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(root: Path | None) -> dict[str, Any]:
    """``commit``, ``dirty`` and ``diff_sha256`` (of ``git diff HEAD`` and the untracked files' names) of the
    checkout at ``root``; None values where it is not a git checkout (an installed wheel)."""
    commit = _git(root, "rev-parse", "HEAD") if root is not None else None
    if commit is None:
        return {"commit": None, "dirty": None, "diff_sha256": None}
    diff = _git(root, "diff", "HEAD", "--", *CODE_PACKAGES) or ""
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "--", *CODE_PACKAGES) or ""
    dirty = bool(diff.strip() or untracked.strip())
    digest = hashlib.sha256((diff + untracked).encode()).hexdigest()[:16] if dirty else None
    return {"commit": commit.strip(), "dirty": dirty, "diff_sha256": digest}


def code_version() -> dict[str, Any]:
    """Which code produced a result: the package version, the git state of its checkout (for the code
    packages) and :func:`code_fingerprint`, the one a sweep compares."""
    try:
        version = importlib.metadata.version("hashee-bench")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"package_version": version, **git_state(package_root()), "fingerprint": code_fingerprint()}


def training_fingerprint(cfg: DictConfig) -> str:
    """sha256 of what a training depends on: the config without :data:`POST_TRAINING_KEYS`, and the code."""
    payload = json.dumps([plain_without(cfg, POST_TRAINING_KEYS), code_fingerprint()], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class MethodNaming:
    """Where a method's label, tags and requested target speed-up are read from in its resolved config."""

    qualifier: str | None = None  # dotted key that qualifies the label and tags: hashee[<hash.name>], hash:<name>
    variants: tuple[str, ...] = ()  # dotted keys shown in the label when set: hashee[frequency; depth=3; pooling=cls]
    untargeted: str | None = None  # label tag of a run without a target (HashEE's paper mode: no calibration)
    target_key: str = "target_speedup"  # dotted key of the requested target speed-up
    has_target: bool = True  # False: no operating point (the full model); its report rows have no target
    reference_label: str | None = None  # a report draws it as a dashed reference line under this label


METHOD_NAMING = {
    "full": MethodNaming(has_target=False, reference_label="full model"),
    "hashee": MethodNaming(qualifier="hash.name", target_key="hashee.target_speedup",
                           variants=("hashee.depth", "hashee.num_buckets", "hashee.pooling"), untargeted="paper"),
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
    """``hashee[frequency]`` for HashEE (the hash matters; a set depth, bucket count or pooling is added, and
    ``paper`` for a run without a target: ``hashee[frequency; depth=3; paper]``), the method name otherwise."""
    rule = naming(method)
    if rule.qualifier is None:
        return str(method)
    value = select(config, rule.qualifier)
    parts = ["?" if value is None else str(value)]
    parts += [f"{key.split('.')[-1]}={select(config, key)}" for key in rule.variants if select(config, key) is not None]
    if rule.untargeted and select(config, rule.target_key) is None:
        parts.append(rule.untargeted)
    return f"{method}[{'; '.join(parts)}]"


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
