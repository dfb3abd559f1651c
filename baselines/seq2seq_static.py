"""Static truncation for generation: the first k layers of the encoder and of the decoder (docs/methods.md section 6).

The generation class of method ``static`` (``StaticExit.seq2seq_target``). No exit decision: every
source token runs encoder layers 1..k, every decoder token decoder layers 1..k, the cross-attention keys/values
are computed for those k layers only and the LM head reads decoder layer k. It is trained as such (the
teacher-forced cross-entropy of the truncated model) and decodes with a k-layer cache; the layers above k never
run, so no state is copied up.

k: ``layers`` (capped at each stack's depth), or derived from ``target_speedup`` before training: the largest k
whose whole-model FLOPs speed-up (:mod:`hashee.seq2seq.cost`: LM head and cross-attention memory included) on
the validation pairs, teacher-forced (their reference lengths), is at least the target. The LM head is never
truncated, so a target that one layer per stack cannot reach fails before training with one line. Without a
target: half the depth. Both stacks are cut: the encoder is most of the cost when sources are long, and cutting
the decoder alone leaves it whole.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from hashee.core.errors import ConfigError
from hashee.data.seq2seq import Seq2SeqDataModule
from hashee.methods.seq2seq_full import Seq2SeqModule, length_masks
from hashee.seq2seq.backbone import Seq2SeqBackbone
from hashee.tasks.generation import GenerationSpec


class Seq2SeqStatic(Seq2SeqModule):
    """The first ``layers`` encoder and decoder layers; CE on the LM head over decoder layer k."""

    training_uses_target = True  # k is derived from the target before training

    def __init__(self, spec: GenerationSpec, backbone: Seq2SeqBackbone, optim: Mapping[str, Any],
                 generation: Mapping[str, Any], layers: int | None = None, target_speedup: float | None = None,
                 name: str = "static") -> None:
        super().__init__(spec, backbone, optim, generation, name=name)
        deepest = max(self.net.encoder_layers, self.net.decoder_layers)
        if layers is not None and not 1 <= int(layers) <= deepest:
            raise ConfigError(f"static: layers must be in 1..{deepest} for this backbone, got {layers}")
        self.target_speedup = None if target_speedup is None else float(target_speedup)
        self.layers: int | None = int(layers) if layers is not None else None
        if self.layers is None and self.target_speedup is None:
            self.layers = max(1, deepest // 2)

    def depths_at(self, k: int) -> tuple[int, int]:
        """(encoder, decoder) depths of truncation at ``k``."""
        return min(k, self.net.encoder_layers), min(k, self.net.decoder_layers)

    @property
    def depths(self) -> tuple[int, int]:
        if self.layers is None:
            raise RuntimeError("Seq2SeqStatic.prepare() must run before the model is used (k comes from the target)")
        return self.depths_at(self.layers)

    # -- k from the target --------------------------------------------------------------------
    def speedups(self, source_mask: torch.Tensor, target_mask: torch.Tensor) -> dict[int, float]:
        """Whole-model FLOPs speed-up of every k on teacher-forced pairs with these masks."""
        full = self.cost.full_pairs_flops(source_mask, target_mask)
        deepest = max(self.net.encoder_layers, self.net.decoder_layers)
        return {k: full / self.cost.pairs_flops(source_mask, target_mask * self.depths_at(k)[1], self.depths_at(k))
                for k in range(1, deepest + 1)}

    def layers_for_target(self, target: float, speedups: Mapping[int, float]) -> int:
        """The largest k whose speed-up reaches ``target`` (a one-line ConfigError when even k = 1 does not)."""
        reaching = [k for k, speedup in speedups.items() if speedup >= target]
        if not reaching:
            raise ConfigError(f"target_speedup={target} is unreachable for generation with static truncation: the "
                              f"first layer of each stack alone gives {speedups[1]:.2f}x here (the LM head is never "
                              "truncated)")
        return max(reaching)

    def prepare(self, datamodule: Seq2SeqDataModule, cache_dir: str | None) -> dict[str, Any]:
        """k from the target on the validation pairs (unless ``layers`` is set); report the expected speed-up."""
        speedups = self.speedups(*length_masks(datamodule, "val"))
        if self.layers is None:
            self.layers = self.layers_for_target(float(self.target_speedup), speedups)
        return {"layers": self.layers, "depths": list(self.depths), "target_speedup": self.target_speedup,
                "expected_val_speedup": speedups[self.layers], "val_speedups": speedups}
