"""Generation with token exits (greedy and beam search) and its cost accounting (METHODS.md sections 3, 6).

FLOPs follow the encoder definition (multiply-add = 2, padding never counts), decoder included.
Per generated token (one decoding step of one row), for each decoder layer run:

    K and V projections of the new token (always; from its frozen state above its exit)  4*d^2
    if the token is active at that layer:
        Q + output projections                4*d^2
        self-attention over the t keys         4*t*d
        cross-attention Q + output             4*d^2
        cross-attention over S source tokens   4*S*d
        FFN                                    4*d*f
    plus the LM head: 2*d*V (+ 2*d^2 for BERT's head transform).

Once per sequence: the encoder (token exits as in classification, no pooler/classifier) and the
cross-attention K/V of the S source tokens at every decoder layer run, 4*S*d^2 each.
The full-model count of a generation is the same steps with every token at every layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from hashee.cost import CostModel
from hashee.seq2seq import DecoderState, Seq2SeqNetwork, StepCost

TargetLayers = Callable[[torch.Tensor], torch.Tensor]  # decoder input ids [R] -> exit layers [R]


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
        return total + cost.rows * self.lm_head_flops

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


@dataclass
class Generated:
    """Generated token ids per example (no start token, no end token) and what they cost."""

    tokens: list[list[int]]
    flops: float
    flops_full: float
    generated_tokens: int  # decoding steps over all rows that produced a kept hypothesis token or the end


def generate(net: Seq2SeqNetwork, cost: Seq2SeqCost, batch: Mapping[str, torch.Tensor],
             source_exits: torch.Tensor | None, target_layers: TargetLayers | None, depths: tuple[int, int],
             max_new_tokens: int, num_beams: int = 1, length_penalty: float = 1.0) -> Generated:
    """Greedy (``num_beams=1``) or beam-search generation with the given exits (None: no exits)."""
    mask = batch["attention_mask"]
    encoder_depth, decoder_depth = depths
    encoded = net.encode(batch["input_ids"], mask, source_exits, encoder_depth)
    memory = net.cross_memory(encoded, mask, decoder_depth)
    lengths = mask.sum(dim=1)
    flops = cost.encoder_flops(lengths, source_exits, encoder_depth) + cost.memory_flops(lengths, decoder_depth)
    flops_full = cost.encoder_flops(lengths, None, cost.encoder_layers) + cost.memory_flops(lengths, cost.decoder_layers)
    state = net.start_state(memory, max_new_tokens, decoder_depth)
    search = _greedy if num_beams <= 1 else _beam_search
    tokens, step_costs, produced = search(net, state, target_layers, decoder_depth, max_new_tokens, num_beams, length_penalty)
    flops += sum(cost.step_flops(c) for c in step_costs)
    flops_full += sum(cost.step_flops(c, full=True) for c in step_costs)
    return Generated(tokens, flops, flops_full, produced)


def _exits_for(target_layers: TargetLayers | None, inputs: torch.Tensor) -> torch.Tensor | None:
    return None if target_layers is None else target_layers(inputs)


def _greedy(net: Seq2SeqNetwork, state: DecoderState, target_layers: TargetLayers | None, depth: int,
            max_new_tokens: int, num_beams: int, length_penalty: float) -> tuple[list[list[int]], list[StepCost], int]:
    """Argmax decoding; a row that produces the end token leaves the batch (its compute stops)."""
    batch = state.memory.mask.shape[0]
    device = state.memory.mask.device
    alive = torch.arange(batch, device=device)
    inputs = torch.full((batch,), net.start_id, dtype=torch.long, device=device)
    out: list[list[int]] = [[] for _ in range(batch)]
    costs: list[StepCost] = []
    produced = 0
    for _ in range(max_new_tokens):
        logits, step_cost = net.step(state, inputs, _exits_for(target_layers, inputs), depth)
        costs.append(step_cost)
        chosen = logits.argmax(dim=-1)
        produced += int(chosen.numel())
        for row, token in zip(alive.tolist(), chosen.tolist()):
            if token != net.eos_id:
                out[row].append(token)
        keep = (chosen != net.eos_id).nonzero(as_tuple=True)[0]
        if keep.numel() == 0:
            break
        if keep.numel() < alive.numel():
            state, alive, chosen = state.select(keep), alive.index_select(0, keep), chosen.index_select(0, keep)
        inputs = chosen
    return out, costs, produced


def _beam_search(net: Seq2SeqNetwork, state: DecoderState, target_layers: TargetLayers | None, depth: int,
                 max_new_tokens: int, num_beams: int, length_penalty: float) -> tuple[list[list[int]], list[StepCost], int]:
    """Beam search: ``num_beams`` hypotheses per example, scored by log-probability / length^``length_penalty``.

    An example stops when it has ``num_beams`` finished hypotheses (or at ``max_new_tokens``, where
    its live beams are finished as they are); its rows then leave the batch.
    """
    batch, k = state.memory.mask.shape[0], num_beams
    device = state.memory.mask.device
    state = state.select(torch.arange(batch, device=device).repeat_interleave(k))
    scores = torch.full((batch, k), float("-inf"), dtype=torch.float64, device=device)
    scores[:, 0] = 0.0
    sequences: list[list[int]] = [[] for _ in range(batch * k)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    alive = list(range(batch))
    inputs = torch.full((batch * k,), net.start_id, dtype=torch.long, device=device)
    costs: list[StepCost] = []
    produced = 0
    for step in range(max_new_tokens):
        logits, step_cost = net.step(state, inputs, _exits_for(target_layers, inputs), depth)
        costs.append(step_cost)
        produced += step_cost.rows
        vocab = logits.shape[-1]
        candidates = (scores.view(-1, 1) + torch.log_softmax(logits.double(), dim=-1)).view(len(alive), k * vocab)
        top_scores, top_index = candidates.topk(2 * k, dim=1)
        rows, tokens, new_scores, new_sequences, still = [], [], [], [], []
        for slot, example in enumerate(alive):
            picked = []
            for score, index in zip(top_scores[slot].tolist(), top_index[slot].tolist()):
                row, token = slot * k + index // vocab, index % vocab
                if score == float("-inf"):
                    break
                if token == net.eos_id:
                    finished[example].append((score / (step + 1) ** length_penalty, list(sequences[row])))
                else:
                    picked.append((row, token, score))
                if len(picked) == k:
                    break
            if len(finished[example]) >= k or not picked:
                continue
            still.append(example)
            for row, token, score in picked:
                rows.append(row)
                tokens.append(token)
                new_scores.append(score)
                new_sequences.append(sequences[row] + [token])
            while len(rows) % k:  # fewer than k live candidates: pad with the last (its score is kept)
                rows.append(rows[-1]); tokens.append(tokens[-1]); new_scores.append(float("-inf"))
                new_sequences.append(new_sequences[-1])
        if not still:
            alive = []
            break
        index = torch.tensor(rows, device=device)
        state, alive, sequences = state.select(index), still, new_sequences
        scores = torch.tensor(new_scores, dtype=torch.float64, device=device).view(len(alive), k)
        inputs = torch.tensor(tokens, dtype=torch.long, device=device)
    for slot, example in enumerate(alive):  # out of steps: finish the live beams as they are
        for beam in range(k):
            score = float(scores[slot, beam])
            if score > float("-inf"):
                sequence = sequences[slot * k + beam]
                finished[example].append((score / max(1, len(sequence)) ** length_penalty, list(sequence)))
    return [max(done, key=lambda item: item[0])[1] if done else [] for done in finished], costs, produced
