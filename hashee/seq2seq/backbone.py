"""Load an encoder-decoder for a generation task: a BERT checkpoint as BERT2BERT, or BART (:mod:`hashee.seq2seq.layouts`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from torch import nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase

from hashee.core.backbone import resolve_path
from hashee.core.errors import ConfigError
from hashee.seq2seq.layouts import seq2seq_layout


@dataclass
class Seq2SeqBackbone:
    """A loaded encoder-decoder: its modules (``model_type`` names its layout), tokenizer and ids."""

    name: str
    model_type: str  # the checkpoint family: its seq2seq layout in the table of hashee.core.layouts ("bert" | "bart")
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    source: str
    start_id: int  # first decoder input
    eos_id: int  # generation stops when this is produced
    pad_id: int


def load_seq2seq_backbone(cfg: Mapping[str, Any]) -> Seq2SeqBackbone:
    """``cfg.path`` (hub id, directory or ``packaged:<module>``) as an encoder-decoder of the layout its
    ``model_type`` calls for (a BERT checkpoint becomes BERT2BERT; ``random_init``: fresh weights)."""
    path = resolve_path(str(cfg["path"]))
    overrides = dict(cfg.get("config") or {})
    random_init = bool(cfg.get("random_init", False))
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        config = AutoConfig.from_pretrained(path, **overrides)
        layout = seq2seq_layout(config.model_type, str(cfg.get("name", path)))
        model = layout.load(path, config, random_init, overrides)
        start, eos, pad = layout.special_ids(config, tokenizer)
    except OSError as exc:
        raise ConfigError(f"backbone '{cfg.get('name', path)}': cannot load '{path}': {str(exc).splitlines()[0]}") from exc
    return Seq2SeqBackbone(str(cfg.get("name", path)), config.model_type, model, tokenizer, "random" if random_init else path,
                           int(start), int(eos), int(pad))
