"""FLOPs of an encoder-decoder with token exits (docs/methods.md sections 3, 6).

FLOPs follow the encoder definition (multiply-add = 2, padding never counts), decoder included.
Per generated token (one decoding step of one row), for each decoder layer run:

    K and V projections of the new token (always; from its frozen state above its exit)  4*d^2
    if the token is active at that layer:
        Q + output projections                4*d^2
        self-attention over the t keys         4*t*d
        cross-attention Q + output             4*d^2
        cross-attention over S source tokens   4*S*d
        FFN                                    4*d*f
    plus the LM head: 2*d*V (+ 2*d^2 for BERT's head transform), once per evaluation: once per token, or,
    for a confidence exit, after every decoder layer the token ran (its exit layer's logits are the output).

Once per sequence: the encoder (token exits as in classification, no pooler/classifier) and the
cross-attention K/V of the S source tokens at every decoder layer run, 4*S*d^2 each.
The full-model count of a generation is the same steps with every token at every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hashee.core.cost import CostModel
from hashee.seq2seq.network import Seq2SeqNetwork, StepCost


@dataclass(frozen=True)
class Seq2SeqCost:
    """Analytic FLOPs of an encoder-decoder (see the module docstring)."""

    hidden: int
    ffn_encoder: int
    ffn_decoder: int
    encoder_layers: int
    decoder_layers: int
    vocab_size: int
    head_transform: bool

    @classmethod
    def from_network(cls, net: Seq2SeqNetwork) -> "Seq2SeqCost":
        return cls(net.hidden, net.ffn_encoder, net.ffn_decoder, net.encoder_layers, net.decoder_layers,
                   net.vocab_size, net.head_transform)

    @property
    def encoder_model(self) -> CostModel:
        return CostModel(self.hidden, self.ffn_encoder, self.encoder_layers, 1)

    @property
    def decoder_model(self) -> CostModel:
        """The decoder as an encoder-style cost model for hash calibration: cross-attention Q + output
        (4*q*d^2) are folded into the FFN term (``f + d``); attention is counted over all keys."""
        return CostModel(self.hidden, self.ffn_decoder + self.hidden, self.decoder_layers, 1)

    @property
    def lm_head_flops(self) -> int:
        d = self.hidden
        return 2 * d * self.vocab_size + (2 * d * d if self.head_transform else 0)

    def encoder_flops(self, source_lengths: torch.Tensor, exits: torch.Tensor | None, depth: int) -> float:
        """Encoder FLOPs of a batch (token exits, or every token at every layer when ``exits`` is None)."""
        model = self.encoder_model
        if exits is None:
            return float((model.full_flops(source_lengths, depth) - model.head_flops).sum())
        return float((model.token_exit_flops(exits, depth) - model.head_flops).sum())

    def memory_flops(self, source_lengths: torch.Tensor, depth: int) -> float:
        """Cross-attention K/V of the source at ``depth`` decoder layers."""
        return float(4 * source_lengths.to(torch.float64).sum() * self.hidden ** 2 * depth)

    def step_flops(self, cost: StepCost, full: bool = False) -> float:
        """One decoding step of ``cost.rows`` rows (``full``: every row at every layer of the decoder)."""
        d, f = self.hidden, self.ffn_decoder
        layers = [cost.rows] * self.decoder_layers if full else cost.active
        sources = [cost.source_tokens] * self.decoder_layers if full else cost.active_source_tokens
        total = 0.0
        for active, source in zip(layers, sources):
            total += 4 * cost.rows * d * d + active * (8 * d * d + 4 * cost.keys * d + 4 * d * f) + 4 * source * d
        return total + (cost.rows if full else cost.head_evaluations) * self.lm_head_flops

    def teacher_forced_flops(self, target_exits: torch.Tensor, source_lengths: torch.Tensor, depth: int) -> torch.Tensor:
        """Per-sequence decoder FLOPs (memory + every step + LM head) of generating a whole target."""
        d, f = self.hidden, self.ffn_decoder
        e = target_exits.to(torch.int64)
        real = (e > 0).to(torch.float64)
        keys = torch.cumsum(real, dim=1)  # position t attends to t + 1 keys
        source = source_lengths.to(torch.float64)
        total = 4 * source * d * d * depth + real.sum(1) * self.lm_head_flops
        for layer in range(1, depth + 1):
            active = (e >= layer).to(torch.float64)
            total += 4 * real.sum(1) * d * d + active.sum(1) * (8 * d * d + 4 * d * f + 4 * source * d)
            total += 4 * d * (active * keys).sum(1)
        return total

    def pairs_flops(self, source_mask: torch.Tensor, target_exits: torch.Tensor, depths: tuple[int, int]) -> float:
        """Whole-model FLOPs of teacher-forcing padded pairs: the encoder's ``depths[0]`` layers on every source
        token, the decoder's ``depths[1]`` with ``target_exits`` (per target token, 0 on padding), one LM head a
        token."""
        lengths = source_mask.sum(1)
        decoder = self.teacher_forced_flops(target_exits, lengths, depths[1])
        return self.encoder_flops(lengths, None, depths[0]) + float(decoder.sum())

    def full_pairs_flops(self, source_mask: torch.Tensor, target_mask: torch.Tensor) -> float:
        """:meth:`pairs_flops` of the full model (every token at every layer)."""
        depths = (self.encoder_layers, self.decoder_layers)
        return self.pairs_flops(source_mask, target_mask * self.decoder_layers, depths)
