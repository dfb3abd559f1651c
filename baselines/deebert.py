"""DeeBERT (Xin et al., 2020): entropy-based early exit with off-ramps trained in a second stage.

Heads: every layer i < L has its own pooler (dense + tanh, a copy of the backbone's pretrained
pooler, taken after the checkpoint loaded), dropout and a linear classifier; head L is the
backbone's pooler + the shared final classifier.

Training (two stages, each with a fresh Trainer and optimizer):
1. ``final``: backbone + final head on the final cross-entropy only (internal heads frozen and
   excluded from the optimizer);
2. ``heads``: a fresh optimizer over the L-1 internal heads only (everything else frozen), loss =
   SUM of their cross-entropies. The checkpoint of this stage is selected on the mean of the
   internal heads' validation primary metric: the final head does not change in stage 2, so
   selecting on it would pick an arbitrary epoch.

Inference: a row exits at the first layer whose softmax entropy (fp32) is below S, else at L.
A NaN entropy never counts as below S (that layer does not exit; the row still ends at layer L).
DeeBERT defines no exit for regression (a scalar output has no entropy): regression tasks raise
:class:`~hashee.core.errors.ConfigError`; use PABEE or BERxiT there.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from baselines.common import LayerOutput, LayerwiseExitModule, State, below, entropy, pooler_copies
from hashee.core.backbone import Backbone
from hashee.core.errors import ConfigError
from hashee.methods.registry import MethodContract, register
from hashee.tasks.spec import TaskSpec

STAGES = ("final", "heads")


@register(MethodContract(name="deebert", task_kinds=("classification",)))
class DeeBERT(LayerwiseExitModule):
    """Per-layer heads with their own poolers; entropy threshold ``S`` as the knob."""

    knob_name = "entropy_threshold"
    threshold_knob = True

    def __init__(self, spec: TaskSpec, backbone: Backbone, optim: Mapping[str, Any], entropy_threshold: float = 0.3,
                 entropy_grid: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
                 name: str = "deebert") -> None:
        if spec.is_regression:
            raise ConfigError(f"deebert: task {spec.name} is a regression task and DeeBERT's entropy exit is "
                              "undefined for a scalar output; use method=pabee or method=berxit")
        super().__init__(spec, backbone, optim, name=name)
        self.poolers = pooler_copies(self.encoder.pooler, self.num_layers - 1)
        self.classifiers = nn.ModuleList(nn.Linear(self.encoder.hidden_size, spec.num_labels)
                                         for _ in range(self.num_layers - 1))
        self.knob = float(entropy_threshold)
        self.knob_grid = [float(s) for s in entropy_grid]
        self.stage = STAGES[0]

    # -- heads and exit rule ---------------------------------------------------------------------
    def layer_head(self, index: int, hidden: torch.Tensor, mask: torch.Tensor) -> LayerOutput:
        if index == self.num_layers - 1:
            logits = self.head(hidden, mask)
        else:
            pooled = self.encoder.pool(hidden, mask, self.poolers[index])
            logits = self.classifiers[index](self.dropout(pooled))
        return LayerOutput(logits, entropy(logits))

    def exit_step(self, index: int, out: LayerOutput, state: State, knob: float) -> tuple[torch.Tensor, State]:
        return below(out.score, knob), state

    # -- training --------------------------------------------------------------------------
    def training_stages(self) -> tuple[str, ...]:
        return STAGES

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the L-1 internal heads (poolers and classifiers)."""
        return [*self.poolers.parameters(), *self.classifiers.parameters()]

    def set_trainable_for_stage(self) -> None:
        """Stage ``final``: everything but the internal heads; stage ``heads``: the internal heads only."""
        heads = {id(p) for p in self.head_parameters()}
        for param in self.parameters():
            param.requires_grad_((id(param) in heads) == (self.stage == "heads"))

    def configure_optimizers(self) -> Any:
        """A fresh AdamW (and schedule) over the parameters this stage trains."""
        self.set_trainable_for_stage()
        return super().configure_optimizers()

    def training_loss(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        labels = batch["labels"]
        if self.stage == "final":
            return self.loss(self.full_logits(batch), labels)
        with torch.no_grad():
            states = self.hidden_states(batch)[:-1]
        mask = batch["attention_mask"]
        return sum(self.loss(self.layer_head(i, h, mask).logits, labels) for i, h in enumerate(states))

    def validation_primary(self, per_layer: list[dict[str, float]]) -> float:
        """Stage ``final``: the final layer; stage ``heads``: the mean over the internal heads."""
        if self.stage == "heads":
            internal = [m[self.spec.primary_metric] for m in per_layer[:-1]]
            return sum(internal) / len(internal)
        return per_layer[-1][self.spec.primary_metric]
