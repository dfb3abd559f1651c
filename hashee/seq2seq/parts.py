"""The pieces of a post-LayerNorm transformer layer, named so that one code path runs every layout, and
the attention, residual and feed-forward steps over them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class AttentionParts:
    """One attention block in post-LN form: ``norm(x + dropout(out(attention(query(x), key(m), value(m)))))``."""

    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    out: nn.Linear
    norm: nn.LayerNorm
    dropout: float


@dataclass
class LayerParts:
    """A post-LN transformer layer: self-attention, optional cross-attention, feed-forward."""

    self_attn: AttentionParts
    cross_attn: AttentionParts | None
    ffn_in: nn.Linear
    activation: Callable[[torch.Tensor], torch.Tensor]
    ffn_out: nn.Linear
    ffn_norm: nn.LayerNorm
    dropout: float
    activation_dropout: float


def attention_block(parts: AttentionParts, context: torch.Tensor, residual: torch.Tensor, training: bool) -> torch.Tensor:
    """Output projection, dropout, residual and LayerNorm of an attention block."""
    return parts.norm(residual + F.dropout(parts.out(context), parts.dropout, training))


def feed_forward(parts: LayerParts, x: torch.Tensor, training: bool) -> torch.Tensor:
    """FFN with residual and LayerNorm."""
    inner = F.dropout(parts.activation(parts.ffn_in(x)), parts.activation_dropout, training)
    return parts.ffn_norm(x + F.dropout(parts.ffn_out(inner), parts.dropout, training))
