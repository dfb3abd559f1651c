"""BERxiT (Xin et al., 2021): DeeBERT heads plus a learning-to-exit (LTE) unit.

Heads: as DeeBERT (per-layer poolers copied from the pretrained pooler, dropout, linear), plus one
LTE unit, ``sigmoid(linear(d, 1))``, shared by all layers and reading each internal head's pooled
vector. It predicts how likely that layer's prediction is wrong.

Training (one stage, alternating by mini-batch index within the epoch):
- even batches: final-layer loss + LTE loss;
- odd batches: SUM of the L-1 internal heads' losses + LTE loss.
One optimizer covers every parameter; gradients go wherever each loss reaches. LTE loss: MSE
between the LTE outputs of layers 1..L-1 and a detached per-layer target, averaged over
(layer, example) pairs; target = 1 if that layer's prediction is wrong else 0, or for regression
``tanh(|y_hat - y|)``. Checkpoints are selected on the final layer's validation metric.

Inference: a row exits at the first layer i < L whose LTE output is below tau, else at layer L
(a NaN LTE output never counts as below). Cost per layer i < L: pooler + classifier + LTE.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import LayerOutput, LayerwiseExitModule, State, below, pooler_copies
from hashee.core.backbone import Backbone
from hashee.methods.registry import MethodContract, register
from hashee.tasks.metrics import predictions
from hashee.tasks.spec import TaskSpec


@register(MethodContract(name="berxit"))
class BERxiT(LayerwiseExitModule):
    """Per-layer heads + shared LTE unit; LTE threshold ``tau`` as the knob."""

    knob_name = "lte_threshold"
    threshold_knob = True

    def __init__(self, spec: TaskSpec, backbone: Backbone, optim: Mapping[str, Any], lte_threshold: float = 0.5,
                 lte_grid: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
                 name: str = "berxit") -> None:
        super().__init__(spec, backbone, optim, name=name)
        self.poolers = pooler_copies(self.encoder.pooler, self.num_layers - 1)
        self.classifiers = nn.ModuleList(nn.Linear(self.encoder.hidden_size, spec.num_labels)
                                         for _ in range(self.num_layers - 1))
        self.lte = nn.Linear(self.encoder.hidden_size, 1)
        self.knob = float(lte_threshold)
        self.knob_grid = [float(t) for t in lte_grid]

    # -- heads and exit rule ---------------------------------------------------------------------
    def layer_head(self, index: int, hidden: torch.Tensor, mask: torch.Tensor) -> LayerOutput:
        """Internal layers: logits and the LTE output; layer L: the final head (no LTE)."""
        if index == self.num_layers - 1:
            return LayerOutput(self.head(hidden, mask))
        pooled = self.encoder.pool(hidden, mask, self.poolers[index])
        logits = self.classifiers[index](self.dropout(pooled))
        return LayerOutput(logits, torch.sigmoid(self.lte(pooled).float()).squeeze(-1))

    def exit_step(self, index: int, out: LayerOutput, state: State, knob: float) -> tuple[torch.Tensor, State]:
        return below(out.score, knob), state

    def head_cost(self, index: int) -> int:
        lte = self.cost.lte_flops if index < self.num_layers - 1 else 0
        return self.cost.head_flops + lte

    # -- training --------------------------------------------------------------------------
    def lte_targets(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Detached per-example target: 1 if wrong else 0; regression ``tanh(|y_hat - y|)``."""
        prediction = predictions(self.spec, logits.detach())
        if self.spec.is_regression:
            return torch.tanh((prediction.float() - labels.float()).abs())
        return (prediction != labels).float()

    def lte_loss(self, outs: Sequence[LayerOutput], labels: torch.Tensor) -> torch.Tensor:
        """MSE between the internal layers' LTE outputs and their targets, over (layer, example) pairs."""
        scores = torch.stack([o.score for o in outs])
        targets = torch.stack([self.lte_targets(o.logits, labels) for o in outs])
        return F.mse_loss(scores, targets)

    def training_loss(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Even batch: final loss + LTE loss; odd batch: sum of the internal losses + LTE loss."""
        labels = batch["labels"]
        outs = self.all_layer_outputs(batch)
        internal = outs[:-1]
        if batch_idx % 2 == 0:
            task = self.loss(outs[-1].logits, labels)
        else:
            task = sum(self.loss(o.logits, labels) for o in internal)
        return task + self.lte_loss(internal, labels)
