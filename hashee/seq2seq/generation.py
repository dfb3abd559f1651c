"""Generation with token exits: greedy and beam search, and what each decoding step cost (FLOPs:
:mod:`hashee.seq2seq.cost`). Decoder exits come from the input token (``target_layers``: HashEE's hash), or
are decided after each layer (``exit_head``: a confidence exit); :meth:`Seq2SeqNetwork.step` runs either.

Greedy decoding can also be *forced* to emit given tokens (``forced``): the same decoding steps as the
generation that produced them, every step computed as usual (the argmax too), only the choice replaced.
Timing replays a method's own output this way without exits, so the wall-clock reference runs the
same steps, with the same rows alive at each, as the FLOPs reference (``flops_full``) counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch

from hashee.seq2seq.cost import Seq2SeqCost
from hashee.seq2seq.network import DecoderState, ExitHead, Seq2SeqNetwork, StepCost

TargetLayers = Callable[[torch.Tensor], torch.Tensor]  # decoder input ids [R] -> exit layers [R]


@dataclass
class Generated:
    """Generated token ids per example (no start token, no end token) and what they cost."""

    tokens: list[list[int]]
    flops: float
    flops_full: float
    generated_tokens: int  # decoding steps over all rows that produced a kept hypothesis token or the end
    exit_layers: list[int] = field(default_factory=list)  # row-steps whose decoder pass ended at layer 1, 2, ...


def generate(net: Seq2SeqNetwork, cost: Seq2SeqCost, batch: Mapping[str, torch.Tensor],
             source_exits: torch.Tensor | None, target_layers: TargetLayers | None, depths: tuple[int, int],
             max_new_tokens: int, num_beams: int = 1, length_penalty: float = 1.0,
             forced: Sequence[Sequence[int]] | None = None, exit_head: ExitHead | None = None) -> Generated:
    """Greedy (``num_beams=1``) or beam-search generation with the given exits (None: no exits; ``exit_head``:
    decoder exits decided after each layer).

    ``forced`` (greedy only): per row, the tokens to emit (the end token after them, unless there are
    ``max_new_tokens``) instead of the argmax."""
    if forced is not None and num_beams > 1:
        raise ValueError("forced decoding replays greedy generation only (num_beams=1)")
    mask = batch["attention_mask"]
    encoder_depth, decoder_depth = depths
    encoded = net.encode(batch["input_ids"], mask, source_exits, encoder_depth)
    memory = net.cross_memory(encoded, mask, decoder_depth)
    lengths = mask.sum(dim=1)
    flops = cost.encoder_flops(lengths, source_exits, encoder_depth) + cost.memory_flops(lengths, decoder_depth)
    flops_full = cost.encoder_flops(lengths, None, cost.encoder_layers) + cost.memory_flops(lengths, cost.decoder_layers)
    state = net.start_state(memory, max_new_tokens, decoder_depth)
    if num_beams <= 1:
        tokens, step_costs, produced = _greedy(net, state, target_layers, decoder_depth, max_new_tokens, forced,
                                               exit_head)
    else:
        tokens, step_costs, produced = _beam_search(net, state, target_layers, decoder_depth, max_new_tokens, num_beams,
                                                    length_penalty, exit_head)
    flops += sum(cost.step_flops(c) for c in step_costs)
    flops_full += sum(cost.step_flops(c, full=True) for c in step_costs)
    return Generated(tokens, flops, flops_full, produced, exit_histogram(step_costs, decoder_depth))


def mean_exit_layer(histogram: Sequence[int]) -> float | None:
    """Mean of an exit-layer histogram (``histogram[l - 1]`` counts layer l); None when it is empty."""
    total = sum(histogram)
    return sum((layer + 1) * count for layer, count in enumerate(histogram)) / total if total else None


def exit_histogram(step_costs: Sequence[StepCost], depth: int) -> list[int]:
    """Row-steps whose decoder pass ended at each layer ``1..depth`` (rows computed at layer l but not l + 1)."""
    counts = [0] * depth
    for step in step_costs:
        active = [*step.active, 0]
        for layer in range(depth):
            counts[layer] += active[layer] - active[layer + 1]
    return counts


def _exits_for(target_layers: TargetLayers | None, inputs: torch.Tensor) -> torch.Tensor | None:
    return None if target_layers is None else target_layers(inputs)


def _forced_choice(forced: Sequence[Sequence[int]], alive: torch.Tensor, step: int, eos_id: int) -> torch.Tensor:
    """Each live row's forced token at ``step`` (the end token once its tokens are used up)."""
    return torch.tensor([forced[row][step] if step < len(forced[row]) else eos_id for row in alive.tolist()],
                        dtype=torch.long, device=alive.device)


def _greedy(net: Seq2SeqNetwork, state: DecoderState, target_layers: TargetLayers | None, depth: int,
            max_new_tokens: int, forced: Sequence[Sequence[int]] | None = None,
            exit_head: ExitHead | None = None) -> tuple[list[list[int]], list[StepCost], int]:
    """Argmax decoding (or ``forced`` tokens); a row that produces the end token leaves the batch (its compute stops)."""
    batch = state.memory.mask.shape[0]
    device = state.memory.mask.device
    alive = torch.arange(batch, device=device)
    inputs = torch.full((batch,), net.start_id, dtype=torch.long, device=device)
    out: list[list[int]] = [[] for _ in range(batch)]
    costs: list[StepCost] = []
    produced = 0
    for step in range(max_new_tokens):
        logits, step_cost = net.step(state, inputs, _exits_for(target_layers, inputs), depth, exit_head)
        costs.append(step_cost)
        chosen = logits.argmax(dim=-1)
        if forced is not None:
            chosen = _forced_choice(forced, alive, step, net.eos_id)
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
                 max_new_tokens: int, num_beams: int, length_penalty: float,
                 exit_head: ExitHead | None = None) -> tuple[list[list[int]], list[StepCost], int]:
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
        logits, step_cost = net.step(state, inputs, _exits_for(target_layers, inputs), depth, exit_head)
        costs.append(step_cost)
        produced += step_cost.rows
        vocab = logits.shape[-1]
        candidates = (scores.view(-1, 1) + torch.log_softmax(logits.double(), dim=-1)).view(len(alive), k * vocab)
        top_scores, top_index = candidates.topk(2 * k, dim=1)
        rows, tokens, new_scores, new_sequences, still = [], [], [], [], []
        for slot, example in enumerate(alive):
            picked = _extend_beams(top_scores[slot].tolist(), top_index[slot].tolist(), slot * k, k, vocab, net.eos_id,
                                   sequences, finished[example], (step + 1) ** length_penalty)
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


def _extend_beams(top_scores: list[float], top_index: list[int], first_row: int, k: int, vocab: int, eos_id: int,
                  sequences: list[list[int]], finished: list[tuple[float, list[int]]],
                  length_norm: float) -> list[tuple[int, int, float]]:
    """One example's best candidates, best first: an end token finishes its hypothesis (score / ``length_norm``,
    added to ``finished``), the others continue; up to ``k`` ``(row, token, score)`` continuations."""
    picked = []
    for score, index in zip(top_scores, top_index):
        row, token = first_row + index // vocab, index % vocab
        if score == float("-inf"):
            break
        if token == eos_id:
            finished.append((score / length_norm, list(sequences[row])))
        else:
            picked.append((row, token, score))
        if len(picked) == k:
            break
    return picked
