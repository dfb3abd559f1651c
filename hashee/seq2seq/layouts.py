"""One adapter per encoder-decoder family, registered by the checkpoint's ``config.model_type`` in the one layout
table of :mod:`hashee.core.layouts` (role ``seq2seq``): how a family loads, where its modules are, how it embeds
tokens and reads out vocabulary logits.

- :class:`Bert2BertLayout`: a BERT checkpoint warm-started as an encoder-decoder (BERT2BERT, Rothe et al.
  2020): the encoder and the decoder both start from the checkpoint, the decoder's cross-attention and LM
  head transform start fresh (the LM output weights are tied to the decoder's word embeddings);
- :class:`BartLayout`: BART with its own weights.

Both are post-LayerNorm transformers: a layout names each layer's pieces (:class:`~hashee.seq2seq.parts.LayerParts`)
and :class:`~hashee.seq2seq.network.Seq2SeqNetwork` runs either.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedTokenizerBase

from hashee.core.errors import ConfigError
from hashee.core.layouts import families, layout_for, register_layout
from hashee.seq2seq.parts import AttentionParts, LayerParts


def _load_bert2bert(path: str, config: Any, random_init: bool, overrides: Mapping[str, Any]) -> nn.Module:
    """Encoder = the BERT model; decoder = the same checkpoint with causal self-attention + fresh cross-attention."""
    from transformers import BertLMHeadModel, BertModel

    decoder_config = copy.deepcopy(config)
    decoder_config.is_decoder, decoder_config.add_cross_attention = True, True
    if random_init:
        encoder, decoder = BertModel(config, add_pooling_layer=False), BertLMHeadModel(decoder_config)
    else:
        encoder = AutoModel.from_pretrained(path, add_pooling_layer=False, **overrides)
        decoder = BertLMHeadModel.from_pretrained(path, config=decoder_config)
    return nn.ModuleDict({"encoder": encoder, "decoder": decoder})


def _load_bart(path: str, config: Any, random_init: bool) -> nn.Module:
    from transformers import BartForConditionalGeneration

    if random_init:
        return BartForConditionalGeneration(config)
    return BartForConditionalGeneration.from_pretrained(path, config=config)


def _bert_attention(block: nn.Module, config: Any) -> AttentionParts:
    return AttentionParts(block.self.query, block.self.key, block.self.value, block.output.dense,
                          block.output.LayerNorm, config.hidden_dropout_prob)


def _bert_layer(layer: nn.Module, config: Any) -> LayerParts:
    cross = _bert_attention(layer.crossattention, config) if hasattr(layer, "crossattention") else None
    return LayerParts(_bert_attention(layer.attention, config), cross, layer.intermediate.dense,
                      layer.intermediate.intermediate_act_fn, layer.output.dense, layer.output.LayerNorm,
                      config.hidden_dropout_prob, 0.0)


def _bart_attention(block: nn.Module, norm: nn.LayerNorm, config: Any) -> AttentionParts:
    return AttentionParts(block.q_proj, block.k_proj, block.v_proj, block.out_proj, norm, config.dropout)


def _bart_layer(layer: nn.Module, config: Any) -> LayerParts:
    cross = _bart_attention(layer.encoder_attn, layer.encoder_attn_layer_norm, config) if hasattr(layer, "encoder_attn") else None
    return LayerParts(_bart_attention(layer.self_attn, layer.self_attn_layer_norm, config), cross, layer.fc1,
                      layer.activation_fn, layer.fc2, layer.final_layer_norm, config.dropout, config.activation_dropout)


@dataclass(frozen=True)
class Sizes:
    """The sizes of an encoder-decoder that its network and its cost model read."""

    hidden: int
    num_heads: int
    ffn_encoder: int
    ffn_decoder: int
    attention_dropout: float
    vocab_size: int


class Seq2SeqLayout:
    """One encoder-decoder family, bound to a loaded model (it holds no weights of its own)."""

    head_transform: ClassVar[bool] = False  # the LM head has a dense + LayerNorm transform (2*d^2 FLOPs per token)

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @staticmethod
    def load(path: str, config: Any, random_init: bool, overrides: Mapping[str, Any]) -> nn.Module:
        """The model of a checkpoint (``random_init``: its architecture with fresh weights)."""
        raise NotImplementedError

    @staticmethod
    def special_ids(config: Any, tokenizer: PreTrainedTokenizerBase) -> tuple[int, int, int]:
        """``(start, end, pad)``: the first decoder input, the token that ends generation, padding."""
        raise NotImplementedError

    def sizes(self) -> Sizes:
        raise NotImplementedError

    def encoder_parts(self) -> list[LayerParts]:
        raise NotImplementedError

    def decoder_parts(self) -> list[LayerParts]:
        raise NotImplementedError

    def embed_source(self, input_ids: torch.Tensor, training: bool) -> torch.Tensor:
        """Encoder input embeddings ``[B, S, d]``."""
        raise NotImplementedError

    def embed_target(self, input_ids: torch.Tensor, start: int, training: bool) -> torch.Tensor:
        """Decoder input embeddings ``[B, n, d]`` for positions ``start .. start + n - 1``."""
        raise NotImplementedError

    def word_embeddings(self, side: str) -> torch.Tensor:
        """Input word-embedding matrix of the encoder (``side="source"``) or the decoder (``"target"``)."""
        raise NotImplementedError

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of decoder states."""
        raise NotImplementedError


@register_layout("seq2seq", "bert")
class Bert2BertLayout(Seq2SeqLayout):
    """``nn.ModuleDict(encoder=BertModel, decoder=BertLMHeadModel)`` (see the module docstring)."""

    head_transform = True

    load = staticmethod(_load_bert2bert)

    @staticmethod
    def special_ids(config: Any, tokenizer: PreTrainedTokenizerBase) -> tuple[int, int, int]:
        return tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id

    @property
    def config(self) -> Any:
        """The encoder's config; the decoder's layers read it too (same sizes and dropout)."""
        return self.model["encoder"].config

    def sizes(self) -> Sizes:
        config = self.config
        return Sizes(config.hidden_size, config.num_attention_heads, config.intermediate_size, config.intermediate_size,
                     config.attention_probs_dropout_prob, config.vocab_size)

    def encoder_parts(self) -> list[LayerParts]:
        return [_bert_layer(layer, self.config) for layer in self.model["encoder"].encoder.layer]

    def decoder_parts(self) -> list[LayerParts]:
        return [_bert_layer(layer, self.config) for layer in self.model["decoder"].bert.encoder.layer]

    def embed_source(self, input_ids: torch.Tensor, training: bool) -> torch.Tensor:
        return self.model["encoder"].embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))

    def embed_target(self, input_ids: torch.Tensor, start: int, training: bool) -> torch.Tensor:
        positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        return self.model["decoder"].bert.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids),
                                                      position_ids=positions)

    def word_embeddings(self, side: str) -> torch.Tensor:
        return self.model["encoder" if side == "source" else "decoder"].get_input_embeddings().weight

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model["decoder"].cls(hidden)


@register_layout("seq2seq", "bart")
class BartLayout(Seq2SeqLayout):
    """``BartForConditionalGeneration``."""

    head_transform = False

    @staticmethod
    def load(path: str, config: Any, random_init: bool, overrides: Mapping[str, Any]) -> nn.Module:
        return _load_bart(path, config, random_init)  # the overrides are in ``config`` already

    @staticmethod
    def special_ids(config: Any, tokenizer: PreTrainedTokenizerBase) -> tuple[int, int, int]:
        return config.decoder_start_token_id, config.eos_token_id, config.pad_token_id

    def sizes(self) -> Sizes:
        config = self.model.config
        return Sizes(config.d_model, config.encoder_attention_heads, config.encoder_ffn_dim, config.decoder_ffn_dim,
                     config.attention_dropout, config.vocab_size)

    def encoder_parts(self) -> list[LayerParts]:
        return [_bart_layer(layer, self.model.config) for layer in self.model.model.encoder.layers]

    def decoder_parts(self) -> list[LayerParts]:
        return [_bart_layer(layer, self.model.config) for layer in self.model.model.decoder.layers]

    def embed_source(self, input_ids: torch.Tensor, training: bool) -> torch.Tensor:
        return self._embed(self.model.model.encoder, input_ids, 0, training)

    def embed_target(self, input_ids: torch.Tensor, start: int, training: bool) -> torch.Tensor:
        return self._embed(self.model.model.decoder, input_ids, start, training)

    @staticmethod
    def _embed(stack: nn.Module, input_ids: torch.Tensor, start: int, training: bool) -> torch.Tensor:
        hidden = stack.embed_tokens(input_ids) + stack.embed_positions(input_ids, start)
        return F.dropout(stack.layernorm_embedding(hidden), stack.dropout, training)

    def word_embeddings(self, side: str) -> torch.Tensor:
        stack = self.model.model.encoder if side == "source" else self.model.model.decoder
        return stack.embed_tokens.weight

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(hidden) + self.model.final_logits_bias


def seq2seq_layout(model_type: str, backbone: str) -> type[Seq2SeqLayout]:
    """The encoder-decoder layout of checkpoints of ``model_type``, or a one-line ConfigError."""
    layout = layout_for("seq2seq", model_type)
    if layout is None:
        raise ConfigError(f"backbone '{backbone}': generation needs a checkpoint of model_type "
                          f"{' or '.join(families('seq2seq'))}, got {model_type!r}")
    return layout
