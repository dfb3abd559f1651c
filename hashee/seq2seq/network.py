"""Sequence-to-sequence networks run layer by layer with token exits in the encoder AND the decoder.

Every layer gathers the tokens it computes (packed, as in :mod:`hashee.core.encoder`): a token whose exit
layer is below ``l`` is not computed at layer ``l``; its frozen state stays a key/value, projected with
that layer's weights (docs/methods.md section 1). Where a family keeps its modules is its layout
(:mod:`hashee.seq2seq.layouts`); one code path runs every layout.

Decoder exits (docs/methods.md section 6): target token ``t`` (the decoder INPUT at position ``t``,
known when it is processed) exits at the layer its hash gives; above it its state is copied
upward, so later tokens attend to it at every layer and the LM head reads its frozen state.
Teacher forcing (training) and incremental generation follow the same rule: during generation
the key/value cache of every layer above a token's exit is filled from its copied state.

A token's exit layer is either given before the step (``exits``: HashEE's hash of the input token) or
decided after each layer by an :data:`ExitHead` (a confidence exit reads the layer's vocabulary logits);
the copy-up rule is the same for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn

from hashee.core.attention import attention
from hashee.core.encoder import Gather, make_gather, to_grid
from hashee.seq2seq.backbone import Seq2SeqBackbone
from hashee.seq2seq.layouts import seq2seq_layout
from hashee.seq2seq.parts import LayerParts, attention_block, feed_forward

# After decoder layer ``index`` (0-based, below the last), the states ``[k, d]`` of the k rows computed there ->
# their vocabulary logits ``[k, V]`` and which of them exit (bool ``[k]``): an exiting row's output is those logits.
ExitHead = Callable[[int, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class LayerPlan:
    """A layer's gather plan, the batch rows it touches and its attention keep-mask ``[rows, 1, q, kv]``."""

    gather: Gather
    row_ids: torch.Tensor
    mask: torch.Tensor


def plan_layer(q_mask: torch.Tensor, kv_mask: torch.Tensor, causal: bool) -> LayerPlan:
    """Plan a layer over ``[B, n]`` masks; ``causal`` lets a query see only keys at or before its position."""
    gather = make_gather(q_mask, kv_mask)
    row_ids = q_mask.any(dim=1).nonzero(as_tuple=True)[0]
    mask = gather.key_mask
    if causal:
        width = q_mask.shape[1]
        q_pos = _slot_positions(gather.q_flat, gather.q_slot, gather.rows * gather.q_max, width).view(gather.rows, 1, gather.q_max, 1)
        kv_pos = _slot_positions(gather.kv_flat, gather.kv_slot, gather.rows * gather.kv_max, width).view(gather.rows, 1, 1, gather.kv_max)
        mask = mask & (kv_pos <= q_pos)
    return LayerPlan(gather, row_ids, mask)


def _slot_positions(flat: torch.Tensor, slot: torch.Tensor, size: int, width: int) -> torch.Tensor:
    """Sequence position of every grid slot; empty slots get ``width`` (after every real position)."""
    return torch.full((size,), width, dtype=torch.long, device=flat.device).index_copy(0, slot, flat % width)


@dataclass
class CrossMemory:
    """Per decoder layer, the cross-attention keys/values of the encoder output ``[B, H, S, d_h]``."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor  # [B, 1, 1, S] bool, True on real source tokens
    source_lengths: torch.Tensor  # [B]

    def select(self, rows: torch.Tensor) -> "CrossMemory":
        pick = lambda ts: [t.index_select(0, rows) for t in ts]  # noqa: E731
        return CrossMemory(pick(self.keys), pick(self.values), self.mask.index_select(0, rows),
                           self.source_lengths.index_select(0, rows))


@dataclass
class DecoderState:
    """Incremental decoding state: self-attention caches ``[B, H, T_max, d_h]`` per layer, memory, length."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    memory: CrossMemory
    length: int

    def select(self, rows: torch.Tensor) -> "DecoderState":
        """Keep (and reorder, for beams) the rows ``rows``."""
        return DecoderState([k.index_select(0, rows) for k in self.keys], [v.index_select(0, rows) for v in self.values],
                            self.memory.select(rows), self.length)


@dataclass
class StepCost:
    """What a decoding step computed, for the analytic FLOPs: rows, active rows per layer, keys, source lengths."""

    rows: int
    active: list[int]  # rows computed at each layer
    keys: int  # self-attention keys of every row (its position + 1)
    source_tokens: int  # sum of the real source lengths of the rows
    active_source_tokens: list[int]  # the same over the rows computed at each layer
    heads: int | None = None  # LM-head evaluations (an exit head reads every layer a row runs); None: one per row

    @property
    def head_evaluations(self) -> int:
        return self.rows if self.heads is None else self.heads


class Seq2SeqNetwork(nn.Module):
    """Encoder + decoder + LM head of a :class:`Seq2SeqBackbone`, run layer by layer with token exits."""

    def __init__(self, backbone: Seq2SeqBackbone) -> None:
        super().__init__()
        self.model_type = backbone.model_type
        self.model = backbone.model
        self.layout = seq2seq_layout(backbone.model_type, backbone.name)(backbone.model)
        self.start_id, self.eos_id, self.pad_id = backbone.start_id, backbone.eos_id, backbone.pad_id
        self.attention_impl = "auto"  # a kernel of hashee.core.attention; "math" is visible to FLOP counters
        self.encoder_parts, self.decoder_parts = self.layout.encoder_parts(), self.layout.decoder_parts()
        sizes = self.layout.sizes()
        self.hidden, self.num_heads = sizes.hidden, sizes.num_heads
        self.ffn_encoder, self.ffn_decoder = sizes.ffn_encoder, sizes.ffn_decoder
        self.attention_dropout, self.vocab_size = sizes.attention_dropout, sizes.vocab_size
        self.head_transform = self.layout.head_transform
        self.encoder_layers, self.decoder_layers = len(self.encoder_parts), len(self.decoder_parts)
        self.head_dim = self.hidden // self.num_heads

    # -- embeddings and head ---------------------------------------------------------------
    def embed_source(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.layout.embed_source(input_ids, self.training)

    def embed_target(self, input_ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Decoder input embeddings ``[B, n, d]`` for positions ``start .. start + n - 1``."""
        return self.layout.embed_target(input_ids, start, self.training)

    def word_embeddings(self, side: str) -> torch.Tensor:
        """Input word-embedding matrix of the encoder (``side="source"``) or the decoder (``"target"``)."""
        return self.layout.word_embeddings(side)

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of decoder states."""
        return self.layout.lm_head(hidden)

    # -- one layer on gathered tokens ------------------------------------------------------
    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[rows, d]`` -> ``[rows, H, 1, d_h]`` (one query per row)."""
        return x.view(x.shape[0], self.num_heads, 1, self.head_dim)

    def run_layer(self, parts: LayerParts, hidden: torch.Tensor, plan: LayerPlan, memory: CrossMemory | None = None,
                  layer: int = 0) -> torch.Tensor:
        """Run one layer on the planned tokens of ``hidden [B, n, d]``; other tokens keep their state."""
        g = plan.gather
        batch, width, d = hidden.shape
        flat = hidden.reshape(batch * width, d)
        x_q = flat.index_select(0, g.q_flat)
        x_kv = x_q if g.shared else flat.index_select(0, g.kv_flat)
        sa, heads = parts.self_attn, self.num_heads
        query = to_grid(sa.query(x_q), g.q_slot, g.rows, g.q_max, heads)
        key = to_grid(sa.key(x_kv), g.kv_slot, g.rows, g.kv_max, heads)
        value = to_grid(sa.value(x_kv), g.kv_slot, g.rows, g.kv_max, heads)
        dropout = self.attention_dropout if self.training else 0.0
        context = attention(query, key, value, plan.mask, dropout, self.attention_impl)
        state = attention_block(sa, self._packed(context, g), x_q, self.training)
        if memory is not None:
            ca = parts.cross_attn
            query = to_grid(ca.query(state), g.q_slot, g.rows, g.q_max, heads)
            rows = plan.row_ids
            context = attention(query, memory.keys[layer].index_select(0, rows), memory.values[layer].index_select(0, rows),
                             memory.mask.index_select(0, rows), dropout, self.attention_impl)
            state = attention_block(ca, self._packed(context, g), state, self.training)
        out = feed_forward(parts, state, self.training)
        return flat.index_copy(0, g.q_flat, out).view(batch, width, d)

    @staticmethod
    def _packed(context: torch.Tensor, g: Gather) -> torch.Tensor:
        """``[rows, H, q_max, d_h]`` attention output -> packed ``[q, d]`` in query order."""
        rows, _, width, _ = context.shape
        return context.transpose(1, 2).reshape(rows * width, -1).index_select(0, g.q_slot)

    def _run_stack(self, parts: list[LayerParts], hidden: torch.Tensor, real: torch.Tensor, exits: torch.Tensor | None,
                   depth: int, causal: bool, memory: CrossMemory | None,
                   states: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``depth`` layers where token ``t`` is computed by layers ``1..exits[t]`` (all when ``exits`` is None);
        ``states``, when given, receives the output of every layer."""
        plan, previous = None, None
        for index in range(depth):
            active = real if exits is None else real & (exits > index)
            if plan is None or not torch.equal(active, previous):
                plan, previous = plan_layer(active, real, causal), active
            if plan.gather.rows:
                hidden = self.run_layer(parts[index], hidden, plan, memory, index)
            if states is not None:
                states.append(hidden)
        return hidden

    # -- whole passes ----------------------------------------------------------------------
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, exits: torch.Tensor | None = None,
               depth: int | None = None) -> torch.Tensor:
        """Encoder output ``[B, S, d]`` (exited source tokens keep their frozen state)."""
        hidden = self.embed_source(input_ids)
        return self._run_stack(self.encoder_parts, hidden, attention_mask.bool(), exits, depth or self.encoder_layers,
                               causal=False, memory=None)

    def cross_memory(self, encoded: torch.Tensor, attention_mask: torch.Tensor, depth: int | None = None) -> CrossMemory:
        """Cross-attention keys/values of the real source tokens for decoder layers ``1..depth``."""
        batch, width, d = encoded.shape
        real = attention_mask.bool().reshape(-1).nonzero(as_tuple=True)[0]
        packed = encoded.reshape(batch * width, d).index_select(0, real)
        keys, values = [], []
        for parts in self.decoder_parts[: depth or self.decoder_layers]:
            for projection, out in ((parts.cross_attn.key, keys), (parts.cross_attn.value, values)):
                grid = packed.new_zeros(batch * width, d).index_copy(0, real, projection(packed))
                out.append(grid.view(batch, width, self.num_heads, self.head_dim).transpose(1, 2))
        mask = attention_mask.bool()[:, None, None, :]
        return CrossMemory(keys, values, mask, attention_mask.sum(dim=1))

    def decode(self, decoder_input_ids: torch.Tensor, decoder_mask: torch.Tensor, memory: CrossMemory,
               exits: torch.Tensor | None = None, depth: int | None = None) -> torch.Tensor:
        """Teacher-forced vocabulary logits ``[B, T, V]`` (the training pass)."""
        hidden = self.embed_target(decoder_input_ids)
        hidden = self._run_stack(self.decoder_parts, hidden, decoder_mask.bool(), exits, depth or self.decoder_layers,
                                 causal=True, memory=memory)
        return self.lm_head(hidden)

    def decoder_states(self, decoder_input_ids: torch.Tensor, decoder_mask: torch.Tensor, memory: CrossMemory,
                       depth: int | None = None) -> list[torch.Tensor]:
        """Teacher-forced decoder states ``[B, T, d]`` after each of layers ``1..depth`` (no exits)."""
        states: list[torch.Tensor] = []
        self._run_stack(self.decoder_parts, self.embed_target(decoder_input_ids), decoder_mask.bool(), None,
                        depth or self.decoder_layers, causal=True, memory=memory, states=states)
        return states

    def forward(self, batch: Mapping[str, torch.Tensor], source_exits: torch.Tensor | None = None,
                target_exits: torch.Tensor | None = None, depths: tuple[int, int] | None = None) -> torch.Tensor:
        """Teacher-forced logits of a batch with ``input_ids``, ``attention_mask``, ``decoder_input_ids``, ``decoder_attention_mask``."""
        enc_depth, dec_depth = depths or (self.encoder_layers, self.decoder_layers)
        encoded = self.encode(batch["input_ids"], batch["attention_mask"], source_exits, enc_depth)
        memory = self.cross_memory(encoded, batch["attention_mask"], dec_depth)
        return self.decode(batch["decoder_input_ids"], batch["decoder_attention_mask"], memory, target_exits, dec_depth)

    # -- incremental decoding --------------------------------------------------------------
    def start_state(self, memory: CrossMemory, max_steps: int, depth: int) -> DecoderState:
        batch = memory.mask.shape[0]
        shape = (batch, self.num_heads, max_steps, self.head_dim)
        device, dtype = memory.keys[0].device, memory.keys[0].dtype
        return DecoderState([torch.zeros(shape, device=device, dtype=dtype) for _ in range(depth)],
                            [torch.zeros(shape, device=device, dtype=dtype) for _ in range(depth)], memory, 0)

    def step(self, state: DecoderState, input_ids: torch.Tensor, exits: torch.Tensor | None, depth: int,
             exit_head: ExitHead | None = None) -> tuple[torch.Tensor, StepCost]:
        """One decoding step for every row: logits ``[B, V]`` of the next token, and what it computed.

        A row is computed by layers ``1..exits[row]``, or, with an ``exit_head``, up to the first layer the
        head lets it exit at (its logits are then the head's, read at that layer); at every layer above,
        only its key/value are projected (from its frozen state) into that layer's cache.
        """
        t = state.length
        hidden = self.embed_target(input_ids[:, None], t)[:, 0]
        rows = hidden.shape[0]
        lengths = state.memory.source_lengths
        total_source = int(lengths.sum())
        exited: torch.Tensor | None = None  # rows the exit head let go (None: none yet)
        logits: torch.Tensor | None = None
        active_counts, active_sources, heads = [], [], 0
        for index in range(depth):
            parts = self.decoder_parts[index]
            state.keys[index][:, :, t] = parts.self_attn.key(hidden).view(rows, self.num_heads, self.head_dim)
            state.values[index][:, :, t] = parts.self_attn.value(hidden).view(rows, self.num_heads, self.head_dim)
            active = _running_rows(exits, exited, index)
            count = rows if active is None else int(active.numel())
            active_counts.append(count)
            if count == rows:
                active = None
            active_sources.append(total_source if active is None else int(lengths.index_select(0, active).sum()))
            if count == 0:
                continue
            y = self._step_layer(index, state, hidden, active, t)
            hidden = y if active is None else hidden.index_copy(0, active, y)
            if exit_head is not None and index < depth - 1:
                layer_logits, leave = exit_head(index, y)
                logits = layer_logits.new_zeros(rows, layer_logits.shape[-1]) if logits is None else logits
                leaving = (torch.arange(rows, device=y.device) if active is None else active)[leave]
                logits[leaving] = layer_logits[leave]
                exited = torch.zeros(rows, dtype=torch.bool, device=y.device) if exited is None else exited
                exited = exited.index_fill(0, leaving, True)
                heads += count
        state.length = t + 1
        if exit_head is None:
            return self.lm_head(hidden), StepCost(rows, active_counts, t + 1, total_source, active_sources)
        last = None if exited is None else (~exited).nonzero(as_tuple=True)[0]  # rows that ran to the last layer
        if last is None or last.numel():
            final = self.lm_head(hidden if last is None else hidden.index_select(0, last))
            logits = final if logits is None else logits.index_copy(0, last, final)
            heads += final.shape[0]
        return logits, StepCost(rows, active_counts, t + 1, total_source, active_sources, heads)

    def _step_layer(self, index: int, state: DecoderState, hidden: torch.Tensor, active: torch.Tensor | None,
                    t: int) -> torch.Tensor:
        """Decoder layer ``index`` on the new token of the rows ``active`` (None: every row), reading the cache."""
        parts = self.decoder_parts[index]
        sa, ca = parts.self_attn, parts.cross_attn
        pick = (lambda x: x) if active is None else (lambda x: x.index_select(0, active))  # noqa: E731
        x = pick(hidden)
        count = x.shape[0]
        context = attention(self._heads(sa.query(x)), pick(state.keys[index][:, :, : t + 1]),
                            pick(state.values[index][:, :, : t + 1]), None, 0.0, self.attention_impl)
        y = attention_block(sa, context.reshape(count, -1), x, False)
        context = attention(self._heads(ca.query(y)), pick(state.memory.keys[index]), pick(state.memory.values[index]),
                            pick(state.memory.mask), 0.0, self.attention_impl)
        return feed_forward(parts, attention_block(ca, context.reshape(count, -1), y, False), False)


def _running_rows(exits: torch.Tensor | None, exited: torch.Tensor | None, index: int) -> torch.Tensor | None:
    """Rows computed at decoder layer ``index``: exit layer above it and not let go by an exit head (None: all)."""
    running = None if exits is None else exits > index
    if exited is not None:
        running = ~exited if running is None else running & ~exited
    return None if running is None else running.nonzero(as_tuple=True)[0]
