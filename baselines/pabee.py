"""PABEE (Zhou et al., 2020): patience-based early exit.

Heads: one shared pooler (the backbone's own) and one linear classifier per layer; the layer-L
classifier is the shared final classifier, so layer L's head is exactly the full model's head.

Training (one stage): the weighted loss ``sum_j j * CE_j / sum_j j`` over j = 1..L (MSE for
regression), with the same scale as the original.

Inference: a per-row counter is increased when the layer's prediction equals the previous
layer's and reset to 0 otherwise; the row exits when the counter reaches the patience t (t+1
agreeing layers in a row), else at layer L. Regression: two predictions agree when their
absolute difference is below ``regression_tau``. t = 0 means never exit (all L layers run).
A prediction that float rounding could change (top-two logits within ``NEAR_TIE``, or a regression
difference that close to tau) is a near-tie: the row is decided alone (``baselines.common``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from baselines.common import LayerOutput, LayerwiseExitModule, State, near
from hashee.core.backbone import Backbone
from hashee.methods.registry import MethodContract, register
from hashee.tasks.metrics import predictions
from hashee.tasks.spec import TaskSpec


@register(MethodContract(name="pabee"))
class PABEE(LayerwiseExitModule):
    """Shared pooler, one linear per layer; patience ``t`` as the knob."""

    knob_name = "patience"

    def __init__(self, spec: TaskSpec, backbone: Backbone, optim: Mapping[str, Any], patience: int = 3,
                 patience_grid: Sequence[int] | None = None, regression_tau: float = 0.1,
                 name: str = "pabee") -> None:
        super().__init__(spec, backbone, optim, name=name)
        self.classifiers = nn.ModuleList(nn.Linear(self.encoder.hidden_size, spec.num_labels)
                                         for _ in range(self.num_layers - 1))
        self.knob = int(patience)
        default_grid = [*range(1, self.num_layers), 0]
        self.knob_grid = [int(t) for t in patience_grid] if patience_grid is not None else default_grid
        self.regression_tau = float(regression_tau)

    # -- heads and exit rule ---------------------------------------------------------------------
    def layer_head(self, index: int, hidden: torch.Tensor, mask: torch.Tensor) -> LayerOutput:
        classifier = self.classifier if index == self.num_layers - 1 else self.classifiers[index]
        return LayerOutput(classifier(self.dropout(self.encoder.pool(hidden, mask))))

    def init_state(self, rows: int, device: torch.device) -> State:
        return {"previous": torch.full((rows,), float("nan"), device=device),
                "counter": torch.zeros(rows, dtype=torch.long, device=device)}

    def agrees(self, prediction: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """Same class, or (regression) closer than ``regression_tau``; never at layer 1 (previous is NaN)."""
        if self.spec.is_regression:
            return (prediction - previous).abs() < self.regression_tau
        return prediction == previous

    def near_tie(self, index: int, out: LayerOutput, state: State, knob: int) -> torch.Tensor:
        """A prediction float rounding could change: top-two logits within ``NEAR_TIE``; regression: a
        difference from the previous layer's prediction within ``NEAR_TIE`` of tau. None when t = 0."""
        if not knob:
            return torch.zeros(out.logits.shape[0], dtype=torch.bool, device=out.logits.device)
        if self.spec.is_regression:
            prediction = predictions(self.spec, out.logits).to(state["previous"].dtype)
            return near((prediction - state["previous"]).abs(), self.regression_tau)
        top = out.logits.float().topk(2, dim=-1).values
        return near(top[:, 1], top[:, 0])

    def exit_step(self, index: int, out: LayerOutput, state: State, knob: int) -> tuple[torch.Tensor, State]:
        prediction = predictions(self.spec, out.logits).to(state["previous"].dtype)
        counter = torch.where(self.agrees(prediction, state["previous"]), state["counter"] + 1, 0)
        exits = counter == knob if knob > 0 else torch.zeros_like(counter, dtype=torch.bool)
        return exits, {"previous": prediction, "counter": counter}

    # -- training --------------------------------------------------------------------------
    def weighted_loss(self, layer_losses: Sequence[torch.Tensor]) -> torch.Tensor:
        """``sum_j j * loss_j / sum_j j`` with j = 1..L."""
        weights = range(1, len(layer_losses) + 1)
        return sum(j * loss for j, loss in zip(weights, layer_losses)) / sum(weights)

    def training_loss(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        outs = self.all_layer_outputs(batch)
        return self.weighted_loss([self.loss(o.logits, batch["labels"]) for o in outs])
