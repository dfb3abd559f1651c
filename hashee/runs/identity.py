"""What identifies a run: its configuration and code (fingerprints), and how it is named (label, target, tags).

- :func:`config_fingerprint`: what a job computes (the resolved config without display and cache
  locations); a job whose ``results.json`` is complete with the same fingerprint is skipped.
- :func:`training_fingerprint`: what a training depends on (the config without what only matters after
  training, plus :func:`code_fingerprint`, every source file of ``hashee`` and ``baselines``): the key of a
  trained model that other target speed-ups reuse.
- :func:`code_version`: which code produced a result (package version, git commit, dirty tree and a hash of
  its diff, :func:`code_fingerprint`), recorded in every ``results.json`` as ``code``; a sweep reuses a finished
  job only when its config *and* code fingerprints match (:func:`reusable`), unless ``resume=config``.
- :func:`method_label`, :func:`requested_target`, :func:`run_tags`: how a run is named, from its method's
  contract (:mod:`hashee.methods.registry`) and its config.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import importlib.util
import json
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from hashee.core.errors import ConfigError
from hashee.methods.registry import MethodContract
from hashee.runs.results import is_complete as completed

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
    return completed(results) and results.get("config_fingerprint") == fingerprint


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


def select(config: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted key of a (plain or OmegaConf) config, None where a node is missing."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def method_label(contract: MethodContract, config: Mapping[str, Any]) -> str:
    """The label a run is reported under: ``hashee[frequency]`` for a method with a label qualifier (HashEE: its hash
    matters; a set depth, bucket count or pooling is added, and ``paper`` for a run without a target:
    ``hashee[frequency; depth=3; paper]``), the method's name otherwise."""
    if contract.label_qualifier is None:
        return contract.name
    value = select(config, contract.label_qualifier)
    parts = ["?" if value is None else str(value)]
    parts += [f"{key.split('.')[-1]}={select(config, key)}" for key in contract.label_variants
              if select(config, key) is not None]
    if contract.untargeted_label and config.get("target_speedup") is None:
        parts.append(contract.untargeted_label)
    return f"{contract.name}[{'; '.join(parts)}]"


def requested_target(contract: MethodContract, config: Mapping[str, Any]) -> float | None:
    """The target speed-up a run was asked for (``target_speedup``; None for a method without one: the full
    model)."""
    value = config.get("target_speedup") if contract.has_target else None
    return None if value is None else float(value)


def run_tags(cfg: Mapping[str, Any], contract: MethodContract) -> list[str]:
    """Tags that let W&B compare runs: task, backbone, method, the method's label qualifier (HashEE: hash), target
    speed-up (methods with one), seed."""
    tags = [f"task:{cfg['task']['name']}", f"backbone:{select(cfg, 'backbone.name')}", f"method:{contract.name}",
            f"seed:{cfg['seed']}"]
    if contract.label_qualifier is not None:
        tags.append(f"{contract.label_qualifier.split('.')[0]}:{select(cfg, contract.label_qualifier)}")
    if requested_target(contract, cfg) is not None:
        tags.append(f"speedup:{cfg['target_speedup']}")
    return tags
