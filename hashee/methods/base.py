"""The LightningModule every method builds on: shared encoder, head, loss, optimizer, validation metrics.

A method subclasses :class:`ExitModule` and defines ``forward`` (logits for a batch, with its own
exits) and ``batch_flops`` (analytic FLOPs per sequence of what ``forward`` computed at inference).
Methods with an operating point (thresholds, patience) also override ``calibrate``.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from transformers import get_linear_schedule_with_warmup

from hashee.core.backbone import Backbone
from hashee.core.cost import CostModel
from hashee.core.distributed import gather_examples
from hashee.core.encoder import MultiExitEncoder
from hashee.data.classification import TaskDataModule
from hashee.tasks.metrics import compute_metrics
from hashee.tasks.spec import TaskSpec

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")
FUSED_ADAMW_DEVICES = ("cpu", "cuda")  # where torch has its one-kernel (fused) AdamW
# Validation metrics are computed on the outputs gathered from every rank, hence identical on all:
# Lightning's advice to reduce them again across devices does not apply.
warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")


def example_index(batch: Mapping[str, torch.Tensor], earlier: list[tuple[torch.Tensor, ...]]) -> torch.Tensor:
    """Positions in the split of a batch's examples (``index``; without it, counted on from ``earlier``)."""
    if "index" in batch:
        return batch["index"].cpu()
    start = sum(int(o[0].shape[0]) for o in earlier)
    return torch.arange(start, start + int(batch["labels"].shape[0]))


class ExitModule(pl.LightningModule):
    """Backbone (as a :class:`MultiExitEncoder`) + dropout + linear classifier on the pooled vector."""

    # Methods whose samples exit on their own in a batch: their batched inference is checked
    # against batch-size-1 inference after every run (``eval.batch1_check``).
    per_sample_exits = False
    # Whether training depends on the target speed-up. When it does not, a sweep over targets
    # trains once and every other target reuses the weights (``reuse_training``).
    training_uses_target = False

    def __init__(self, spec: TaskSpec, backbone: Backbone, optim: Mapping[str, Any], name: str = "full") -> None:
        super().__init__()
        self.spec, self.method_name = spec, name
        self.optim = dict(optim)
        config = backbone.model.config
        self.encoder = MultiExitEncoder(backbone.model, pooling=backbone.pooling)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, spec.num_labels)
        self.cost = CostModel.from_config(config, spec.num_labels, pooling=backbone.pooling)
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.stage = "main"

    # -- to override -----------------------------------------------------------------------
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def batch_flops(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        """Analytic FLOPs per sequence of ``predict`` on this batch (docs/methods.md section 3)."""
        raise NotImplementedError

    def training_stages(self) -> tuple[str, ...]:
        """Names of the training stages, run in order, each with a fresh Trainer and optimizer.

        ``self.stage`` holds the current one while it trains (read it in ``training_step`` and
        ``configure_optimizers``)."""
        return ("main",)

    def evaluation_curve(self, batches: list[Mapping[str, torch.Tensor]]) -> list[dict[str, Any]] | None:
        """Quality vs FLOPs speed-up over the method's knob on these batches (None if it has no knob)."""
        return None

    def prepare(self, datamodule: TaskDataModule, cache_dir: str | None) -> dict[str, Any]:
        """Build anything derived from the training split before training (e.g. a hash). Returns a summary."""
        return {}

    def calibrate(self, datamodule: TaskDataModule, target_speedup: float | None) -> dict[str, Any]:
        """Choose the operating point on the validation split. Returns what was chosen (empty if nothing)."""
        return {}

    def predict(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Inference logits at the chosen operating point (default: ``forward``)."""
        return self(batch)

    def predict_with_flops(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the FLOPs per sequence of that very inference (exits decided once)."""
        return self.predict(batch), self.batch_flops(batch)

    @property
    def head_layer(self) -> int:
        """The layer whose output the (single) classifier reads: L for the full model."""
        return self.encoder.num_layers

    def predict_outputs(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per sequence: logits, FLOPs and the layer its prediction was read at (one inference)."""
        logits, flops = self.predict_with_flops(batch)
        exit_layer = torch.full((logits.shape[0],), float(self.head_layer), device=logits.device)
        return {"logits": logits, "flops": flops, "exit_layer": exit_layer}

    def exit_head_logits(self, batches: list[Mapping[str, torch.Tensor]]) -> dict[int, torch.Tensor] | None:
        """Every exit head's logits ``{layer: [N, C]}`` on these batches, as if every example exited
        there; None for a method with a single head (read at :attr:`head_layer`)."""
        return None

    # -- shared pieces ---------------------------------------------------------------------
    def head(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooler on the pooled vector ([CLS] or mean of real tokens), dropout, classifier: logits ``[B, C]``."""
        return self.classifier(self.dropout(self.encoder.pool(hidden, attention_mask)))

    def full_logits(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The full model (every layer, every token): the reference for measured speed-up."""
        hidden = self.encoder.forward_full(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        return self.head(hidden, batch["attention_mask"])

    def full_flops(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.cost.full_flops(batch["attention_mask"].sum(dim=1))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, or MSE on the single output for regression."""
        if self.spec.is_regression:
            return F.mse_loss(logits.squeeze(-1).float(), labels.float())
        return F.cross_entropy(logits.float(), labels)

    # -- Lightning hooks -------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["labels"].shape[0])
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._val_outputs.append((example_index(batch, self._val_outputs), self(batch).detach().float().cpu(),
                                  batch["labels"].cpu()))

    def on_validation_epoch_end(self) -> None:
        """Metrics of the whole validation split: under DDP, the outputs of every rank (identical on all)."""
        if not self._val_outputs:
            return
        logits, labels = gather_examples(*(torch.cat([o[k] for o in self._val_outputs]) for k in range(3)))
        self._val_outputs.clear()
        metrics = compute_metrics(self.spec, logits, labels)
        for key, value in metrics.items():
            self.log(f"val/{key}", value, prog_bar=key == self.spec.primary_metric)
        self.log("val/primary", metrics[self.spec.primary_metric])

    def trainable_parameters(self) -> list[dict[str, Any]]:
        """AdamW parameter groups: weight decay on weights, none on biases and LayerNorms."""
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (no_decay if any(k in name for k in NO_DECAY) else decay).append(param)
        return [{"params": decay, "weight_decay": float(self.optim.get("weight_decay", 0.01))},
                {"params": no_decay, "weight_decay": 0.0}]

    def configure_optimizers(self) -> Any:
        """AdamW (groups actually passed, unlike the original) with linear warmup then linear decay."""
        optimizer = adamw(self.trainable_parameters(), float(self.optim.get("lr", 5e-5)),
                          bool(self.optim.get("fused", True)))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(float(self.optim.get("warmup_ratio", 0.1)) * total)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def adamw(groups: list[dict[str, Any]], lr: float, fused: bool = True) -> torch.optim.AdamW:
    """torch's AdamW over parameter ``groups``; ``fused``: its one-kernel implementation where every parameter's
    device has it (:data:`FUSED_ADAMW_DEVICES`), else torch's default.

    The fused kernel applies the same update as the default per-tensor loop (equal to float rounding, tested). On
    CPU at 1 thread the default loop took 0.3 s a step for MiniLM's 23M parameters and 1.3-2.1 s for MPNet's 109M,
    fused 0.02 s and 0.13-0.19 s: a fixed cost per step, the same for every method, that hid part of HashEE's
    training speed-up (docs/performance.md).
    """
    params = [param for group in groups for param in group["params"]]
    supported = all(p.device.type in FUSED_ADAMW_DEVICES and p.is_floating_point() for p in params)
    return torch.optim.AdamW(groups, lr=lr, fused=True if fused and supported else None)
