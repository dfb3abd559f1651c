"""A multi-exit encoder: runs a Hugging Face BERT-family backbone layer by layer with its own weights.

Every layer computes only the tokens it is asked to (the *queries*) against the tokens it is
asked to attend to (the *keys/values*). Both sets are gathered out of the ``[B, n, d]`` hidden
states into a packed layout, so the projections and the FFN run on exactly the active tokens:
padding and exited tokens cost nothing. Attention runs per sequence on a small padded grid of
slots (``rows x max active``) with a key mask, so a sequence never sees another one.

Two modes share this one step:
- token level (HashEE): queries = real tokens whose exit layer >= l; keys/values = all real tokens
  (exited ones keep their frozen state and are re-projected with this layer's K/V weights) or,
  as an ablation, only the active ones;
- row level (instance-level baselines): the caller drops exited rows from the batch and runs the
  layer on every real token of the remaining rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel


@dataclass
class Gather:
    """Index plan of one layer: which tokens are computed and attended to, and their attention slots.

    Indices ``*_flat`` point into the flattened ``[B * n]`` hidden states; ``*_slot`` point into the
    flattened ``[rows * max]`` attention grid of the rows that have at least one query.
    """

    q_flat: torch.Tensor
    q_slot: torch.Tensor
    kv_flat: torch.Tensor
    kv_slot: torch.Tensor
    rows: int
    q_max: int
    kv_max: int
    key_mask: torch.Tensor  # [rows, 1, 1, kv_max] bool, True where a key exists
    shared: bool  # queries and keys/values are the same tokens


def _slots(mask: torch.Tensor, row_ids: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """Flat indices, grid slots, widest row and per-row counts of the True entries of ``mask[rows, n]``."""
    counts = mask.sum(dim=1)
    widest = int(counts.max()) if counts.numel() else 0
    rank = mask.cumsum(dim=1) - 1
    row, pos = mask.nonzero(as_tuple=True)
    flat = row_ids[row] * width + pos
    slot = row * widest + rank[row, pos]
    return flat, slot, widest, counts


def make_gather(q_mask: torch.Tensor, kv_mask: torch.Tensor | None = None) -> Gather:
    """Plan a layer from boolean ``[B, n]`` masks of the tokens to compute and to attend to.

    Rows with no query are skipped entirely. ``kv_mask=None`` means keys/values = queries.
    """
    width = q_mask.shape[1]
    row_ids = q_mask.any(dim=1).nonzero(as_tuple=True)[0]
    q_rows = q_mask.index_select(0, row_ids)
    q_flat, q_slot, q_max, _ = _slots(q_rows, row_ids, width)
    shared = kv_mask is None or kv_mask is q_mask or bool(torch.equal(kv_mask, q_mask))
    if shared:
        kv_flat, kv_slot, kv_max, kv_counts = q_flat, q_slot, q_max, q_rows.sum(dim=1)
    else:
        kv_rows = (kv_mask | q_mask).index_select(0, row_ids)
        kv_flat, kv_slot, kv_max, kv_counts = _slots(kv_rows, row_ids, width)
    key_mask = torch.arange(kv_max, device=q_mask.device)[None, :] < kv_counts[:, None]
    return Gather(q_flat, q_slot, kv_flat, kv_slot, int(row_ids.numel()), q_max, kv_max, key_mask[:, None, None, :], shared)


def _to_grid(values: torch.Tensor, slot: torch.Tensor, rows: int, width: int, heads: int) -> torch.Tensor:
    """Scatter packed ``[t, d]`` vectors into a ``[rows, heads, width, d/heads]`` attention grid."""
    d = values.shape[-1]
    grid = values.new_zeros(rows * width, d).index_copy(0, slot, values)
    return grid.view(rows, width, heads, d // heads).transpose(1, 2)


def math_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor,
                   dropout_p: float) -> torch.Tensor:
    """Explicit softmax(QK^T / sqrt(d_h)) V: same result as SDPA, visible to FLOP counters."""
    scores = query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1])
    scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
    probs = F.dropout(scores.softmax(dim=-1), p=dropout_p)
    return probs @ value


class MultiExitEncoder(nn.Module):
    """Layer-by-layer execution of a BERT-family model (embeddings, layers, pooler) with token gathering."""

    def __init__(self, model: PreTrainedModel, pooling: str = "cls") -> None:
        super().__init__()
        config = model.config
        self.config = config
        self.pooling = pooling  # what every head reads: "cls" or "mean" (METHODS.md section 2a)
        self.embeddings = model.embeddings
        self.layers = model.encoder.layer
        self.pooler = model.pooler
        self.num_layers = config.num_hidden_layers
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.attention_dropout = config.attention_probs_dropout_prob
        self.attention_impl = "sdpa"  # "math" computes attention with explicit matmuls (for FLOP counting)

    # -- building blocks -------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Input embeddings ``[B, n, d]`` (word + position + type, LayerNorm, dropout) of the backbone."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        return self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)

    def layer(self, index: int, hidden: torch.Tensor, plan: Gather) -> torch.Tensor:
        """Run layer ``index`` (0-based) on the planned tokens of ``hidden [B, n, d]``; others are untouched."""
        layer = self.layers[index]
        attn = layer.attention.self
        batch, width, d = hidden.shape
        flat = hidden.reshape(batch * width, d)
        x_q = flat.index_select(0, plan.q_flat)
        x_kv = x_q if plan.shared else flat.index_select(0, plan.kv_flat)
        query = _to_grid(attn.query(x_q), plan.q_slot, plan.rows, plan.q_max, self.num_heads)
        key = _to_grid(attn.key(x_kv), plan.kv_slot, plan.rows, plan.kv_max, self.num_heads)
        value = _to_grid(attn.value(x_kv), plan.kv_slot, plan.rows, plan.kv_max, self.num_heads)
        dropout = self.attention_dropout if self.training else 0.0
        attend = math_attention if self.attention_impl == "math" else F.scaled_dot_product_attention
        context = attend(query, key, value, plan.key_mask, dropout)
        context = context.transpose(1, 2).reshape(plan.rows * plan.q_max, d).index_select(0, plan.q_slot)
        attended = layer.attention.output(context, x_q)
        out = layer.output(layer.intermediate(attended), attended)
        return flat.index_copy(0, plan.q_flat, out).view(batch, width, d)

    def pooled_vector(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One vector ``[B, d]`` per sequence: its [CLS] state, or the mean of its real tokens' states.

        The mean never counts padding, so a row's vector does not depend on its batch.
        """
        if self.pooling == "mean":
            mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return hidden[:, 0]

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor, pooler: nn.Module | None = None) -> torch.Tensor:
        """A pooler (dense + tanh; default the backbone's) on the pooled vector: what every head reads."""
        pooler = self.pooler if pooler is None else pooler
        return pooler.activation(pooler.dense(self.pooled_vector(hidden, attention_mask)))

    # -- whole passes ----------------------------------------------------------------------
    def forward_full(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     token_type_ids: torch.Tensor | None = None, depth: int | None = None) -> torch.Tensor:
        """Hidden states after ``depth`` (default all) layers with every real token computed."""
        hidden = self.embed(input_ids, token_type_ids)
        plan = make_gather(attention_mask.bool())
        for index in range(depth or self.num_layers):
            hidden = self.layer(index, hidden, plan)
        return hidden

    def forward_token_exits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, exit_layers: torch.Tensor,
                            depth: int, token_type_ids: torch.Tensor | None = None,
                            attend_exited: bool = True) -> torch.Tensor:
        """Hidden states after ``depth`` layers where token ``t`` is updated by layers ``1..exit_layers[t]`` only.

        ``exit_layers`` is ``[B, n]`` (0 on padding). Exited tokens keep their state; they remain
        keys/values for later layers when ``attend_exited`` (else they are dropped from attention).
        """
        hidden = self.embed(input_ids, token_type_ids)
        real = attention_mask.bool()
        previous: torch.Tensor | None = None
        plan: Gather | None = None
        for index in range(depth):
            active = real & (exit_layers > index)
            if plan is None or not torch.equal(active, previous):
                plan = make_gather(active, real if attend_exited else None)
                previous = active
            hidden = self.layer(index, hidden, plan)
        return hidden
