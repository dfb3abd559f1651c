"""Confidence-based per-token exit in the decoder (CALM, Schuster et al. 2022; docs/methods.md section 6).

Heads: the model's own LM head (BERT2BERT: tied to the decoder's word embeddings) reads every decoder layer; no
parameter is added. Training (one stage): teacher forcing through every layer, loss ``sum_l l * CE_l / sum_l l``
(deeper layers weigh more, PABEE's joint weighting); checkpoints are selected on that loss on the validation split.

Generation: after decoder layer ``l < L`` the LM head reads each running token's state; a token whose top-1
probability (softmax in fp32) exceeds the threshold ``λ`` exits: those logits are its output, and above ``l`` its
state is copied up (the key/value caches of the upper layers are filled from it, as HashEE's decoder does), so later
tokens attend to it at every layer. A token that never passes runs to layer ``L``. ``λ = 1`` never exits early,
``λ = 0`` exits every token at layer 1. The encoder runs in full.

FLOPs (:mod:`hashee.seq2seq.cost`): every LM head evaluated counts, one after every decoder layer a token ran (its
exit layer's logits are the output, not computed again): with a vocabulary of V, one head costs ``2*d*V``, several
decoder layers' worth (5.7 with MiniLM's 30,522 tokens), so only an exit after layer 1 saves FLOPs there.

Operating point (docs/methods.md section 4), on the validation split only: after training, the validation split is
generated (the run's decoding settings) at every ``λ`` of ``threshold_grid``, then ``refine_steps`` times at the
middle of the two thresholds around the target; each pass gives its realized whole-model FLOPs speed-up (the same
decoding steps at full depth over its FLOPs) and ROUGE, and
:func:`hashee.core.operating_points.choose_operating_point` picks ``λ``.
Before training, a target above what every token exiting at layer 1 would give on the validation pairs (their
reference lengths; the encoder, the cross-attention keys/values of every decoder layer and one LM head per token
remain) fails with one line. A model that generates longer outputs than the references can realize more.

Near-ties: a top-1 probability within float rounding of ``λ`` may fall on either side in another batch composition,
as a near-tie of the argmax may for every method; no batch-size-1 fallback is made.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from hashee.core.errors import ConfigError
from hashee.core.operating_points import choose_operating_point
from hashee.data.seq2seq import IGNORE_INDEX, Seq2SeqDataModule
from hashee.methods.registry import MethodContract, register
from hashee.methods.seq2seq_full import Seq2SeqModule, length_masks
from hashee.seq2seq.backbone import Seq2SeqBackbone
from hashee.seq2seq.generation import mean_exit_layer
from hashee.seq2seq.network import ExitHead
from hashee.tasks.generation import GenerationSpec
from hashee.tasks.rouge import rouge_scores

KNOB = "confidence_threshold"


def top1_probability(logits: torch.Tensor) -> torch.Tensor:
    """Softmax probability of the most likely token, per row, in fp32."""
    z = logits.float()
    return (z.amax(dim=-1) - torch.logsumexp(z, dim=-1)).exp()


def middle_threshold(curve: Sequence[Mapping[str, Any]], target: float) -> float | None:
    """The middle of the highest threshold whose speed-up reaches ``target`` and the next higher one evaluated
    (None when no threshold reaches it or the highest does)."""
    reaching = [p["value"] for p in curve if p["flops_speedup"] >= target]
    if not reaching:
        return None
    low = max(reaching)
    above = [p["value"] for p in curve if p["value"] > low]
    return (low + min(above)) / 2 if above else None


@register(MethodContract(name="confidence", task_kinds=("generation",)))
class ConfidenceExit(Seq2SeqModule):
    """The shared LM head after every decoder layer; a token exits once its top-1 probability exceeds ``threshold``."""

    seq2seq_target = "baselines.seq2seq_confidence.ConfidenceExit"  # generation only: itself

    def __init__(self, spec: GenerationSpec, backbone: Seq2SeqBackbone, optim: Mapping[str, Any],
                 generation: Mapping[str, Any], threshold: float = 0.9,
                 threshold_grid: Sequence[float] = (0.0, 0.5, 0.9, 1.0), refine_steps: int = 4,
                 target_speedup: float | None = None, name: str = "confidence") -> None:
        super().__init__(spec, backbone, optim, generation, name=name)
        if self.net.decoder_layers < 2:
            raise ConfigError("confidence: per-token exits need a decoder with at least 2 layers")
        self.threshold = float(threshold)
        self.threshold_grid = sorted({float(value) for value in threshold_grid})
        self.refine_steps = int(refine_steps)
        self.target_speedup = None if target_speedup is None else float(target_speedup)

    # -- training: every layer's LM head ----------------------------------------------------------
    def layer_losses(self, batch: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """Teacher-forced cross-entropy of the LM head on each decoder layer (real target tokens only)."""
        net, mask = self.net, batch["attention_mask"]
        memory = net.cross_memory(net.encode(batch["input_ids"], mask), mask)
        states = net.decoder_states(batch["decoder_input_ids"], batch["decoder_attention_mask"], memory)
        labels = batch["labels"]
        real = labels != IGNORE_INDEX
        return [F.cross_entropy(net.lm_head(state[real]).float(), labels[real]) for state in states]

    @staticmethod
    def joint_loss(losses: Sequence[torch.Tensor]) -> torch.Tensor:
        """``sum_l l * CE_l / sum_l l``."""
        return sum((layer + 1) * loss for layer, loss in enumerate(losses)) / (len(losses) * (len(losses) + 1) / 2)

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.joint_loss(self.layer_losses(batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["labels"].shape[0])
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        tokens = int((batch["labels"] != IGNORE_INDEX).sum())
        self._val_loss.append((float(self.joint_loss(self.layer_losses(batch))) * tokens, tokens))

    # -- generation: exit after the first confident layer -------------------------------------------
    def exit_head(self) -> ExitHead:
        threshold, lm_head = self.threshold, self.net.lm_head

        def decide(index: int, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = lm_head(states)
            return logits, top1_probability(logits) > threshold

        return decide

    # -- the threshold, on validation ----------------------------------------------------------------
    def prepare(self, datamodule: Seq2SeqDataModule, cache_dir: str | None) -> dict[str, Any]:
        """Refuse a target no threshold can reach (every token exiting at layer 1, on the validation pairs)."""
        source_mask, target_mask = length_masks(datamodule, "val")
        depths = (self.net.encoder_layers, self.net.decoder_layers)
        full = self.cost.full_pairs_flops(source_mask, target_mask)
        bound = full / self.cost.pairs_flops(source_mask, target_mask, depths)  # exit layer 1 (the mask) everywhere
        if self.target_speedup is not None and self.target_speedup > bound:
            raise ConfigError(f"target_speedup={self.target_speedup} is unreachable for generation with confidence "
                              f"exits: with the encoder in full, every decoder token exiting at layer 1 gives "
                              f"{bound:.2f}x here")
        return {"target_speedup": self.target_speedup, "val_speedup_bound": bound}

    def val_point(self, batches: Sequence[Mapping[str, torch.Tensor]], references: Sequence[str],
                  threshold: float) -> dict[str, Any]:
        """ROUGE and realized FLOPs speed-up of greedy generation of the validation split at ``threshold``."""
        self.threshold = threshold
        out = self.generate_split(batches)
        metrics = rouge_scores(out["predictions"], references, self.spec.metrics)
        return {"knob": KNOB, "value": threshold, "metrics": metrics, "primary": metrics[self.spec.primary_metric],
                "flops_speedup": out["flops_full"] / out["flops"],
                "mean_exit_layer": mean_exit_layer(out["exit_layers"])}

    def calibrate(self, datamodule: Seq2SeqDataModule, target_speedup: float | None) -> dict[str, Any]:
        """Choose the threshold on the validation split only; set it and return the choice with the curve."""
        if target_speedup is None:
            return {"knob": KNOB, "value": self.threshold, "target_speedup": None,
                    "note": "no target speed-up: the threshold from the method config"}
        batches, references = datamodule.eval_batches("val"), datamodule.references("val")
        curve = [self.val_point(batches, references, threshold) for threshold in self.threshold_grid]
        for _ in range(self.refine_steps):
            middle = middle_threshold(curve, target_speedup)
            if middle is None:
                break
            curve.append(self.val_point(batches, references, middle))
        point, reached = choose_operating_point(curve, target_speedup)
        self.threshold = float(point["value"])
        note = ("closest FLOPs speed-up at or above the target" if reached
                else "no threshold reaches the target: the fastest point")
        return {"knob": KNOB, "value": self.threshold, "target_speedup": target_speedup,
                "val_flops_speedup": point["flops_speedup"], "val_primary": point["primary"], "reached_target": reached,
                "note": note, "val_curve": sorted(curve, key=lambda p: p["value"])}

    def use_operating_point(self, chosen: Mapping[str, Any]) -> None:
        if "value" in chosen:
            self.threshold = float(chosen["value"])
