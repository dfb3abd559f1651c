"""A multi-exit encoder: runs a Hugging Face BERT-family or MPNet backbone layer by layer with its own weights.

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

Where a family's modules live and what its attention adds is a small *layout* class per family
(:class:`BertLayout`, :class:`MPNetLayout`, chosen by ``config.model_type`` from :data:`LAYOUTS`).
MPNet adds a relative position bias, shared by all layers, to the attention scores; it is built
from each gathered query's and key's original position in its sequence, once per plan.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable

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
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # per-plan tensors a layout reuses across layers


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


def to_grid(values: torch.Tensor, slot: torch.Tensor, rows: int, width: int, heads: int) -> torch.Tensor:
    """Scatter packed ``[t, d]`` vectors into a ``[rows, heads, width, d/heads]`` attention grid."""
    d = values.shape[-1]
    grid = values.new_zeros(rows * width, d).index_copy(0, slot, values)
    return grid.view(rows, width, heads, d // heads).transpose(1, 2)


def math_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor,
                   dropout_p: float) -> torch.Tensor:
    """Explicit softmax(QK^T / sqrt(d_h) + mask) V: same result as SDPA, visible to FLOP counters.

    ``key_mask`` is boolean (True where a key exists) or, as SDPA takes it, an additive float mask
    (a position bias, very negative where no key exists).
    """
    scores = query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1])
    if key_mask.dtype == torch.bool:
        scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
    else:
        scores = scores + key_mask
    probs = F.dropout(scores.softmax(dim=-1), p=dropout_p)
    return probs @ value


LayerParts = tuple[nn.Module, nn.Module, nn.Module, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


class BertLayout(nn.Module):
    """BERT, RoBERTa, MiniLM, ...: ``attention.self.{query,key,value}``, ``attention.output(context, input)``.

    A layout says where a family's modules are and what its attention adds; it has no parameters
    of its own (a subclass may hold shared ones, e.g. MPNet's position bias table). The encoder
    looks its hooks up once, so the BERT layer loop does what it did before layouts existed.
    """

    scores_mask: Callable[[Gather, int, torch.dtype], torch.Tensor] | None = None  # None: the plan's key mask alone

    def __init__(self, model: PreTrainedModel | None = None) -> None:
        super().__init__()

    def embed(self, embeddings: nn.Module, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        """Word + position + token-type embeddings, LayerNorm, dropout."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        return embeddings(input_ids=input_ids, token_type_ids=token_type_ids)

    @staticmethod
    def parts(layer: nn.Module) -> LayerParts:
        """Query, key and value projections of ``layer`` and its attention output
        (``(context, input) ->`` projection, dropout, residual, LayerNorm)."""
        attn = layer.attention.self
        return attn.query, attn.key, attn.value, layer.attention.output


class MPNetLayout(BertLayout):
    """MPNet: ``attention.attn.{q,k,v,o}`` + ``attention.LayerNorm``, no token types, and a relative
    position bias (one ``[buckets, heads]`` table shared by all layers) added to the attention scores.

    The bias of a query at position i and a key at position j is ``table[bucket(j - i)]``, with the
    positions taken from the gathered tokens' original places in their sequence, so token exits,
    dropped rows and the packed layout leave it unchanged. Same math as transformers'
    ``MPNetEncoder.compute_position_bias`` (which always uses 32 buckets and max distance 128).
    """

    num_buckets = 32
    max_distance = 128

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__(model)
        self.relative_attention_bias = model.encoder.relative_attention_bias

    def embed(self, embeddings: nn.Module, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        """Word + position embeddings (positions counted from the padding id, as MPNet does), LayerNorm, dropout."""
        return embeddings(input_ids=input_ids)

    @staticmethod
    def parts(layer: nn.Module) -> LayerParts:
        attn = layer.attention.attn
        return attn.q, attn.k, attn.v, functools.partial(_mpnet_attention_output, layer.attention)

    def scores_mask(self, plan: Gather, width: int, dtype: torch.dtype) -> torch.Tensor:
        """Additive ``[rows, heads, q_max, kv_max]`` mask: the position bias, very negative where no key exists.

        Built once per plan (and hidden width and dtype) and reused by every layer that runs the plan.
        """
        key = ("mpnet_bias", width, dtype)
        if key not in plan.cache:
            q_pos = _grid_positions(plan.q_flat, plan.q_slot, plan.rows, plan.q_max, width)
            kv_pos = _grid_positions(plan.kv_flat, plan.kv_slot, plan.rows, plan.kv_max, width)
            offsets = torch.arange(1 - width, width, device=q_pos.device)  # every possible j - i
            table = self.relative_attention_bias(relative_position_bucket(offsets, self.num_buckets, self.max_distance))
            bias = table[kv_pos[:, None, :] - q_pos[:, :, None] + (width - 1)]  # [rows, q_max, kv_max, heads]
            bias = bias.permute(0, 3, 1, 2).to(dtype)
            plan.cache[key] = bias.masked_fill(~plan.key_mask, torch.finfo(dtype).min).contiguous()
        return plan.cache[key]


def _mpnet_attention_output(block: nn.Module, context: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """MPNetAttention after the scores: output projection, dropout, residual, LayerNorm."""
    return block.LayerNorm(block.dropout(block.attn.o(context)) + inputs)


def _grid_positions(flat: torch.Tensor, slot: torch.Tensor, rows: int, slots: int, width: int) -> torch.Tensor:
    """``[rows, slots]`` original positions (within their sequence) of planned tokens; 0 in empty slots."""
    return flat.new_zeros(rows * slots).index_copy(0, slot, flat % width).view(rows, slots)


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int = 32,
                             max_distance: int = 128) -> torch.Tensor:
    """MPNet's (T5-style) bucket of a relative position ``key - query``: exact for small distances,
    logarithmic up to ``max_distance``, one half of the buckets per direction."""
    half = num_buckets // 2
    n = -relative_position
    ret = (n < 0).to(torch.long) * half
    n = n.abs()
    max_exact = half // 2
    scaled = torch.log(n.clamp(min=max_exact).float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (scaled * (half - max_exact)).to(torch.long)).clamp(max=half - 1)
    return ret + torch.where(n < max_exact, n, large)


LAYOUTS: dict[str, type[BertLayout]] = {"mpnet": MPNetLayout}  # config.model_type -> layout; default BertLayout


def layout_for(model: PreTrainedModel) -> BertLayout:
    """The layout of ``model``'s family (BERT's unless :data:`LAYOUTS` names another)."""
    return LAYOUTS.get(getattr(model.config, "model_type", ""), BertLayout)(model)


class MultiExitEncoder(nn.Module):
    """Layer-by-layer execution of a BERT-family or MPNet model (embeddings, layers, pooler) with token gathering."""

    def __init__(self, model: PreTrainedModel, pooling: str = "cls") -> None:
        super().__init__()
        config = model.config
        self.config = config
        self.pooling = pooling  # what every head reads: "cls" or "mean" (METHODS.md section 2a)
        self.embeddings = model.embeddings
        self.layers = model.encoder.layer
        self.pooler = model.pooler
        self.layout = layout_for(model)  # where the family's modules are and what its attention adds
        self._parts = self.layout.parts  # looked up once: the layer loop is a hot path
        self._scores_mask = self.layout.scores_mask
        self.num_layers = config.num_hidden_layers
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.attention_dropout = config.attention_probs_dropout_prob
        self.attention_impl = "sdpa"  # "math" computes attention with explicit matmuls (for FLOP counting)

    # -- building blocks -------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Input embeddings ``[B, n, d]`` (word + position (+ type), LayerNorm, dropout) of the backbone."""
        return self.layout.embed(self.embeddings, input_ids, token_type_ids)

    def layer(self, index: int, hidden: torch.Tensor, plan: Gather) -> torch.Tensor:
        """Run layer ``index`` (0-based) on the planned tokens of ``hidden [B, n, d]``; others are untouched."""
        layer = self.layers[index]
        to_query, to_key, to_value, attention_output = self._parts(layer)
        batch, width, d = hidden.shape
        flat = hidden.reshape(batch * width, d)
        x_q = flat.index_select(0, plan.q_flat)
        x_kv = x_q if plan.shared else flat.index_select(0, plan.kv_flat)
        query = to_grid(to_query(x_q), plan.q_slot, plan.rows, plan.q_max, self.num_heads)
        key = to_grid(to_key(x_kv), plan.kv_slot, plan.rows, plan.kv_max, self.num_heads)
        value = to_grid(to_value(x_kv), plan.kv_slot, plan.rows, plan.kv_max, self.num_heads)
        dropout = self.attention_dropout if self.training else 0.0
        attend = math_attention if self.attention_impl == "math" else F.scaled_dot_product_attention
        mask = plan.key_mask if self._scores_mask is None else self._scores_mask(plan, width, query.dtype)
        context = attend(query, key, value, mask, dropout)
        context = context.transpose(1, 2).reshape(plan.rows * plan.q_max, d).index_select(0, plan.q_slot)
        attended = attention_output(context, x_q)
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
