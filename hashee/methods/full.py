"""The full model: every layer, every token, no exit. The reference every speed-up is measured against."""

from __future__ import annotations

from typing import Mapping

import torch

from hashee.methods.base import ExitModule
from hashee.methods.registry import MethodContract, register


@register(MethodContract(name="full", task_kinds=("classification", "regression", "generation"), operating_point="none",
                          reference_label="full model", full_model=True))
class FullModel(ExitModule):
    """Fine-tunes backbone + pooler + classifier (CE, or MSE for regression)."""

    seq2seq_target = "hashee.methods.seq2seq_full.Seq2SeqModule"  # the class that runs generation tasks

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.full_logits(batch)

    def batch_flops(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.full_flops(batch)
