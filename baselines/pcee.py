"""PCEE-BERT (Zhang et al., 2022): patient and confident early exit.

Heads and training as PABEE (shared pooler, one linear per layer, ``sum_j j * CE_j / sum_j j``).
Inference: a per-row counter is increased while the layer's normalised entropy
``entropy / ln(C)`` (fp32) is below tau and reset to 0 otherwise; the row exits when the counter
reaches the patience t (default 2), else at layer L. A NaN entropy resets the counter (never
"confident"). Classification only: regression raises :class:`~hashee.core.errors.ConfigError`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch

from baselines.common import LayerOutput, State, below, entropy, near
from baselines.pabee import PABEE
from hashee.core.backbone import Backbone
from hashee.core.errors import ConfigError
from hashee.methods.registry import MethodContract, register
from hashee.tasks.spec import TaskSpec


@register(MethodContract(name="pcee", task_kinds=("classification",)))
class PCEE(PABEE):
    """PABEE heads; confidence-patience exit with normalised-entropy threshold ``tau`` as the knob."""

    knob_name = "entropy_threshold"
    threshold_knob = True

    def __init__(self, spec: TaskSpec, backbone: Backbone, optim: Mapping[str, Any], entropy_threshold: float = 0.4,
                 entropy_grid: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
                 patience: int = 2, name: str = "pcee") -> None:
        if spec.is_regression:
            raise ConfigError(f"pcee: task {spec.name} is a regression task and PCEE's entropy exit is undefined "
                              "for a scalar output; use method=pabee or method=berxit")
        super().__init__(spec, backbone, optim, patience=patience, name=name)
        if int(patience) < 1:
            raise ConfigError(f"pcee: patience must be >= 1, got {patience}")
        self.patience = int(patience)
        self.knob = float(entropy_threshold)
        self.knob_grid = [float(t) for t in entropy_grid]

    def layer_head(self, index: int, hidden: torch.Tensor, mask: torch.Tensor) -> LayerOutput:
        out = super().layer_head(index, hidden, mask)
        return LayerOutput(out.logits, entropy(out.logits) / math.log(self.spec.num_labels))

    def init_state(self, rows: int, device: torch.device) -> State:
        return {"counter": torch.zeros(rows, dtype=torch.long, device=device)}

    def near_tie(self, index: int, out: LayerOutput, state: State, knob: float) -> torch.Tensor:
        """A normalised entropy within ``NEAR_TIE`` of tau (PABEE's logit rule does not apply here)."""
        return near(out.score, knob)

    def exit_step(self, index: int, out: LayerOutput, state: State, knob: float) -> tuple[torch.Tensor, State]:
        counter = torch.where(below(out.score, knob), state["counter"] + 1, 0)
        return counter == self.patience, {"counter": counter}
