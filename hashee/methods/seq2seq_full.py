"""The full encoder-decoder as a LightningModule (the reference of generation runs); HashEE subclasses it.

Training: teacher-forced cross-entropy on the target tokens (padding ignored), AdamW with linear
warmup and decay (the same optimizer code as the classification methods). Checkpoints are
selected on the validation split's token-level loss (``val/primary = -val/loss``): generating the
validation split every epoch would cost more than the training on a CPU; ROUGE on validation is
computed once after training and reported next to the test ROUGE.

Hooks a generation method overrides: its exits (``source_exits``, ``target_exits``, ``target_layers``,
``exit_head``), its depths, ``prepare`` (before training) and ``calibrate`` (after training, on the
validation split only: the operating point; ``use_operating_point`` sets a recorded one again).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from hashee.core.padding import pad_sequences
from hashee.data.seq2seq import IGNORE_INDEX, Seq2SeqDataModule
from hashee.methods.base import ExitModule
from hashee.seq2seq.backbone import Seq2SeqBackbone
from hashee.seq2seq.cost import Seq2SeqCost
from hashee.seq2seq.generation import Generated, TargetLayers, generate
from hashee.seq2seq.network import ExitHead, Seq2SeqNetwork
from hashee.tasks.generation import GenerationSpec


def length_masks(datamodule: Seq2SeqDataModule, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """0/1 masks ``[N, S]`` and ``[N, T]`` of the source and decoder-input lengths of a split's pairs (what a
    teacher-forced cost estimate reads: :meth:`hashee.seq2seq.cost.Seq2SeqCost.pairs_flops`)."""
    sources, targets = datamodule.token_ids(split, "source"), datamodule.token_ids(split, "target")
    return pad_sequences(sources)[1], pad_sequences(targets)[1]


class Seq2SeqModule(pl.LightningModule):
    """Encoder-decoder without exits: every token at every layer."""

    per_sample_exits = False
    training_uses_target = False

    def __init__(self, spec: GenerationSpec, backbone: Seq2SeqBackbone, optim: Mapping[str, Any],
                 generation: Mapping[str, Any], name: str = "full") -> None:
        super().__init__()
        self.spec, self.method_name = spec, name
        self.optim, self.generation = dict(optim), dict(generation)
        self.net = Seq2SeqNetwork(backbone)
        self.cost = Seq2SeqCost.from_network(self.net)
        self.tokenizer = backbone.tokenizer
        self.stage = "main"
        self._val_loss: list[tuple[float, int]] = []

    # -- exits (none here; HashEE overrides) -----------------------------------------------
    def source_exits(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        return None

    def target_exits(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        return None

    def target_layers(self) -> TargetLayers | None:
        """Exit layer of a decoder input token during generation (None: no exits)."""
        return None

    def exit_head(self) -> ExitHead | None:
        """Decoder exits decided after each layer during generation (None: none)."""
        return None

    @property
    def depths(self) -> tuple[int, int]:
        return self.net.encoder_layers, self.net.decoder_layers

    def training_stages(self) -> tuple[str, ...]:
        return ("main",)

    def prepare(self, datamodule: Seq2SeqDataModule, cache_dir: str | None) -> dict[str, Any]:
        """Build anything derived from the data before training (a hash, a depth). Returns a summary."""
        return {}

    def calibrate(self, datamodule: Seq2SeqDataModule, target_speedup: float | None) -> dict[str, Any]:
        """Choose the operating point on the validation split after training. Returns the choice ({}: none)."""
        return {}

    def use_operating_point(self, chosen: Mapping[str, Any]) -> None:
        """Set the operating point a run's :meth:`calibrate` recorded (a finished run loaded again)."""

    # -- passes ----------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Teacher-forced logits ``[B, T, V]`` with the method's exits."""
        return self.net(batch, self.source_exits(batch), self.target_exits(batch), self.depths)

    def generate(self, batch: Mapping[str, torch.Tensor], exits: bool = True,
                 forced: Sequence[Sequence[int]] | None = None) -> Generated:
        """Generate for a batch with the method's exits (``exits=False``: the same weights, no exits);
        ``forced``: emit these tokens per row instead of the argmax (greedy replay, for timing)."""
        settings = self.generation
        if exits:
            source, target, head, depths = self.source_exits(batch), self.target_layers(), self.exit_head(), self.depths
        else:
            source, target, head, depths = None, None, None, (self.net.encoder_layers, self.net.decoder_layers)
        return generate(self.net, self.cost, batch, source, target, depths, int(settings["max_new_tokens"]),
                        int(settings.get("num_beams", 1)), float(settings.get("length_penalty", 1.0)), forced, head)

    def generate_split(self, batches: Sequence[Mapping[str, torch.Tensor]], exits: bool = True) -> dict[str, Any]:
        """Generate every batch (with ``index``): texts in dataset order, FLOPs (with exits, and of the same steps
        at full depth), generated-token counts, the decoder exit-layer histogram and each batch's tokens
        (``batch_tokens``, what a timing replay forces)."""
        texts: dict[int, str] = {}
        batch_tokens: list[list[list[int]]] = []
        flops = flops_full = 0.0
        produced, histogram = 0, []
        with torch.inference_mode():
            for batch in batches:
                out = self.generate(batch, exits=exits)
                batch_tokens.append(out.tokens)
                texts.update((i, self.decode_text(t)) for i, t in zip(batch["index"].tolist(), out.tokens))
                flops, flops_full = flops + out.flops, flops_full + out.flops_full
                produced += out.generated_tokens
                histogram = [a + b for a, b in zip(histogram, out.exit_layers)] if histogram else list(out.exit_layers)
        return {"predictions": [texts[i] for i in sorted(texts)], "flops": flops, "flops_full": flops_full,
                "generated_tokens": produced, "exit_layers": histogram, "batch_tokens": batch_tokens}

    def decode_text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    @staticmethod
    def token_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                               ignore_index=IGNORE_INDEX, reduction=reduction)

    # -- Lightning hooks -------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.token_loss(self(batch), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["labels"].shape[0])
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        total = self.token_loss(self(batch), batch["labels"], reduction="sum")
        self._val_loss.append((float(total), int((batch["labels"] != IGNORE_INDEX).sum())))

    def on_validation_epoch_end(self) -> None:
        if not self._val_loss:
            return
        loss = sum(t for t, _ in self._val_loss) / max(1, sum(n for _, n in self._val_loss))
        self._val_loss.clear()
        self.log("val/loss", loss, prog_bar=True)
        self.log("val/primary", -loss)

    # The classification methods' AdamW groups (no decay on biases/LayerNorms) and schedule.
    trainable_parameters = ExitModule.trainable_parameters
    configure_optimizers = ExitModule.configure_optimizers
