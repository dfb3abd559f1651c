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
(:class:`BertLayout`, :class:`MPNetLayout`), registered by ``config.model_type`` in the one layout table of
:mod:`hashee.core.layouts` (role ``encoder``; a family without one of its own runs as BERT's).
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

from hashee.core.attention import attention
from hashee.core.layouts import layout_for as registered_layout
from hashee.core.layouts import register_layout


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
    dense: bool = False  # every position of ``[B, n]`` is computed in place (see :func:`plan_real`)
    kv_dense: bool = False  # keys/values: every position of ``[B, n]``, projected in place; ``rows == B``
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


DENSE_MAX_PADDING = 0.1  # plan_real computes padding too when it is at most this share of the batch's positions


def plan_real(attention_mask: torch.Tensor) -> Gather:
    """Plan a layer that computes every real token, where the caller ignores what padding positions hold.

    When padding is at most :data:`DENSE_MAX_PADDING` of the ``[B, n]`` positions (always with one
    row), the plan is *dense*: the layer runs on the whole padded batch in place, with no gather or
    scatter (padding is masked out of attention, so real tokens get exactly the packed result, and
    padding positions get values nobody reads). Otherwise it is :func:`make_gather`'s packed plan.
    """
    real = attention_mask.bool()
    batch, width = real.shape
    padding = batch * width - int(real.sum())
    if batch == 0 or padding > DENSE_MAX_PADDING * batch * width:
        return make_gather(real)
    every = torch.arange(batch * width, device=real.device)
    return Gather(every, every, every, every, batch, width, width, real[:, None, None, :], True, dense=True)


def exit_masks(real: torch.Tensor, exit_layers: torch.Tensor, depth: int) -> torch.Tensor:
    """``[depth, B, n]``: at layer ``l`` (0-based) the real tokens whose exit layer is above ``l``."""
    levels = torch.arange(depth, device=real.device)[:, None, None]
    return real[None] & (exit_layers[None] > levels)


def plan_layers(q_masks: torch.Tensor, real: torch.Tensor, attend_real: bool = True) -> list[Gather]:
    """Every layer's plan at once from nested ``[L, B, n]`` query masks (layer ``l+1``'s inside layer ``l``'s).

    Keys/values are all ``real`` tokens (``attend_real``) or the layer's queries; positions outside
    ``real`` are padding that nobody reads. The plans compute what :func:`make_gather` plans on each
    layer's masks would, built with one ``nonzero`` and one host sync for the whole batch. When padding
    is small (:data:`DENSE_MAX_PADDING`), a layer that computes every real token is dense, and a layer
    whose keys/values are every real token of every row projects them in place (no gather, no scatter).
    A layer whose queries equal the previous layer's reuses its :class:`Gather` (and the plan's caches).
    """
    num_layers, batch, width = q_masks.shape
    q_counts = q_masks.sum(dim=2)                                       # [L, B]
    has_query = q_counts > 0
    kv_masks = (real[None] | q_masks) & has_query[:, :, None] if attend_real else q_masks
    kv_counts = kv_masks.sum(dim=2)
    unchanged = torch.cat([q_counts.new_zeros(1, dtype=torch.bool), (q_counts[1:] == q_counts[:-1]).all(dim=1)])
    stats = torch.stack([q_counts.sum(dim=1), kv_counts.sum(dim=1), has_query.sum(dim=1), q_counts.amax(dim=1),
                         kv_counts.amax(dim=1), unchanged.long(), (q_counts == kv_counts).all(dim=1).long(),
                         (q_counts == real.sum(dim=1)).all(dim=1).long(), real.sum().expand(num_layers)]).tolist()
    totals, kv_totals, rows, q_max, kv_max, same, shared, every_real, real_count = stats  # the one host sync
    small_padding = bool(num_layers) and batch * width - real_count[0] <= DENSE_MAX_PADDING * batch * width
    row_of = has_query.cumsum(dim=1) - 1                                # row -> its row in the layer's grid
    q_flat, q_slot = _layer_slots(q_masks, row_of, q_counts.amax(dim=1), totals)
    kv_flat, kv_slot = _layer_slots(kv_masks, row_of, kv_counts.amax(dim=1), kv_totals) if attend_real else (q_flat, q_slot)
    every = torch.arange(batch * width, device=real.device)
    real_keys = real[:, None, None, :]
    plans: list[Gather] = []
    for index in range(num_layers):
        if same[index] and plans:
            plans.append(plans[-1])
        elif small_padding and shared[index] and every_real[index]:
            plans.append(Gather(every, every, every, every, batch, width, width, real_keys, True, dense=True))
        elif small_padding and attend_real and rows[index] == batch:
            plans.append(Gather(q_flat[index], q_slot[index], every, every, batch, q_max[index], width, real_keys,
                                False, kv_dense=True))
        else:
            key_mask = torch.arange(kv_max[index], device=real.device)[None, :] < kv_counts[index][has_query[index]][:, None]
            flat, slot = (q_flat[index], q_slot[index]) if shared[index] else (kv_flat[index], kv_slot[index])
            plans.append(Gather(q_flat[index], q_slot[index], flat, slot, rows[index], q_max[index], kv_max[index],
                                key_mask[:, None, None, :], bool(shared[index])))
    return plans


def _layer_slots(masks: torch.Tensor, row_of: torch.Tensor, widest: torch.Tensor,
                 totals: list[int]) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Per layer: flat ``[B * n]`` indices and grid slots of the True entries of ``masks [L, B, n]``."""
    width = masks.shape[2]
    rank = masks.cumsum(dim=2) - 1
    layer, row, pos = masks.nonzero(as_tuple=True)                      # ordered by layer, row, position
    flat = row * width + pos
    slot = row_of[layer, row] * widest[layer] + rank[layer, row, pos]
    return flat.split(totals), slot.split(totals)


def to_grid(values: torch.Tensor, slot: torch.Tensor, rows: int, width: int, heads: int) -> torch.Tensor:
    """Scatter packed ``[t, d]`` vectors into a ``[rows, heads, width, d/heads]`` attention grid."""
    d = values.shape[-1]
    grid = values.new_zeros(rows * width, d).index_copy_(0, slot, values)
    return grid.view(rows, width, heads, d // heads).transpose(1, 2)


def fused_linear(linears: tuple[nn.Module, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated weight ``[sum out, in]`` and bias of ``linears``, cached on the first one until a weight changes."""
    if len(linears) == 1:
        return linears[0].weight, linears[0].bias
    if any(m.weight.is_inference() or m.bias.is_inference() for m in linears):  # no version counter to check
        return torch.cat([m.weight for m in linears]), torch.cat([m.bias for m in linears])
    stamp = tuple((m.weight._version, m.weight.data_ptr(), m.bias._version) for m in linears)
    cached = getattr(linears[0], "_hashee_fused", {}).get(len(linears))
    if cached is None or cached[0] != stamp:
        with torch.inference_mode(False), torch.no_grad():
            cached = (stamp, torch.cat([m.weight for m in linears]), torch.cat([m.bias for m in linears]))
        linears[0].__dict__.setdefault("_hashee_fused", {})[len(linears)] = cached
    return cached[1], cached[2]


# What the encoder reads of a layer: its query, key and value projections and its attention output step
AttentionHooks = tuple[nn.Module, nn.Module, nn.Module, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


@register_layout("encoder", "bert")
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
    def parts(layer: nn.Module) -> AttentionHooks:
        """Query, key and value projections of ``layer`` and its attention output
        (``(context, input) ->`` projection, dropout, residual, LayerNorm)."""
        attn = layer.attention.self
        return attn.query, attn.key, attn.value, layer.attention.output


@register_layout("encoder", "mpnet")
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
    def parts(layer: nn.Module) -> AttentionHooks:
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
    return flat.new_zeros(rows * slots).index_copy_(0, slot, flat % width).view(rows, slots)


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


def layout_for(model: PreTrainedModel) -> BertLayout:
    """The encoder layout of ``model``'s family, bound to it (BERT's unless the layout table names another)."""
    return registered_layout("encoder", getattr(model.config, "model_type", ""))(model)


class MultiExitEncoder(nn.Module):
    """Layer-by-layer execution of a BERT-family or MPNet model (embeddings, layers, pooler) with token gathering."""

    def __init__(self, model: PreTrainedModel, pooling: str = "cls") -> None:
        super().__init__()
        config = model.config
        self.config = config
        self.pooling = pooling  # what every head reads: "cls" or "mean" (docs/methods.md section 2a)
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
        self.attention_impl = "auto"  # a kernel of hashee.core.attention; "math" is visible to FLOP counters

    # -- building blocks -------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Input embeddings ``[B, n, d]`` (word + position (+ type), LayerNorm, dropout) of the backbone."""
        return self.layout.embed(self.embeddings, input_ids, token_type_ids)

    def layer(self, index: int, hidden: torch.Tensor, plan: Gather, in_place: bool = False) -> torch.Tensor:
        """Run layer ``index`` (0-based) on the planned tokens of ``hidden [B, n, d]``; others are untouched.

        ``in_place``: a packed plan writes its tokens into ``hidden`` itself instead of a copy (only for a
        caller that keeps no other reference to ``hidden`` and needs no gradient)."""
        layer = self.layers[index]
        to_query, to_key, to_value, attention_output = self._parts(layer)
        batch, width, d = hidden.shape
        flat = hidden.reshape(batch * width, d)
        x_q = flat if plan.dense else flat.index_select(0, plan.q_flat)
        if plan.dense:
            query, key, value = self._project_dense(x_q, batch, width, (to_query, to_key, to_value))
        elif plan.shared:
            query, key, value = self._project(x_q, plan.q_slot, plan.rows, plan.q_max, (to_query, to_key, to_value))
        else:
            (query,) = self._project(x_q, plan.q_slot, plan.rows, plan.q_max, (to_query,))
            if plan.kv_dense:
                key, value = self._project_dense(flat, batch, width, (to_key, to_value))
            else:
                x_kv = flat.index_select(0, plan.kv_flat)
                key, value = self._project(x_kv, plan.kv_slot, plan.rows, plan.kv_max, (to_key, to_value))
        dropout = self.attention_dropout if self.training else 0.0
        mask = plan.key_mask if self._scores_mask is None else self._scores_mask(plan, width, query.dtype)
        context = attention(query, key, value, mask, dropout, self.attention_impl)
        context = context.transpose(1, 2).reshape(plan.rows * plan.q_max, d)
        context = context if plan.dense else context.index_select(0, plan.q_slot)
        attended = attention_output(context, x_q)
        out = layer.output(layer.intermediate(attended), attended)
        if plan.dense:
            return out.view(batch, width, d)
        if in_place:
            return flat.index_copy_(0, plan.q_flat, out).view(batch, width, d)
        return flat.index_copy(0, plan.q_flat, out).view(batch, width, d)

    def _project_dense(self, x: torch.Tensor, batch: int, width: int,
                       linears: tuple[nn.Module, ...]) -> tuple[torch.Tensor, ...]:
        """Q, K, V of every position of ``x [B * n, d]`` as ``[B, heads, n, d_h]`` views (no scatter)."""
        heads, d = self.num_heads, x.shape[-1]
        if torch.is_grad_enabled():
            return tuple(linear(x).view(batch, width, heads, d // heads).transpose(1, 2) for linear in linears)
        weight, bias = fused_linear(linears)
        projected = F.linear(x, weight, bias).view(batch, width, len(linears), heads, d // heads)
        return tuple(projected.permute(2, 0, 3, 1, 4).unbind(0))

    def _project(self, x: torch.Tensor, slot: torch.Tensor, rows: int, width: int,
                 linears: tuple[nn.Module, ...]) -> tuple[torch.Tensor, ...]:
        """``linears`` (e.g. Q, K, V) of packed ``x [t, d]``, each as a ``[rows, heads, width, d_h]`` grid.

        Without autograd the projections run as one matrix product on the concatenated weights and
        one scatter into the grid; with autograd (training) each linear runs as its own module.
        """
        if torch.is_grad_enabled():
            return tuple(to_grid(linear(x), slot, rows, width, self.num_heads) for linear in linears)
        weight, bias = fused_linear(linears)
        projected = F.linear(x, weight, bias)
        d = x.shape[-1]
        grid = projected.new_zeros(rows * width, projected.shape[-1]).index_copy_(0, slot, projected)
        grid = grid.view(rows, width, len(linears), self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        return tuple(grid.unbind(0))

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
        plan = plan_real(attention_mask)
        in_place = not torch.is_grad_enabled()  # the states are this pass's own: no one else reads them
        for index in range(depth or self.num_layers):
            hidden = self.layer(index, hidden, plan, in_place)
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
        plans = plan_layers(exit_masks(real, exit_layers, depth), real, attend_exited)
        in_place = not torch.is_grad_enabled()  # the states are this pass's own: no one else reads them
        for index, plan in enumerate(plans):
            if plan.rows:
                hidden = self.layer(index, hidden, plan, in_place)
        return hidden
