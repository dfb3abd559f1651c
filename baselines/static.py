"""Static-k: the first k layers, then the pooled vector, the backbone's pooler and a linear classifier (docs/methods.md 2).

No exit decision: every instance runs exactly k layers, in training and at inference. Training is
plain cross-entropy (MSE for regression) on layer k. The knob k is fixed before training, so
there is nothing to calibrate afterwards (``calibrate`` returns ``{}``, no curve). ``layers: null``
derives k from ``target_speedup`` (the largest k with L / k >= target, the layer ratio that the
FLOPs speed-up approaches; the one final head makes the realised speed-up slightly lower), or
uses half the depth when no target is given. On generation tasks ``baselines.seq2seq_static`` runs instead
(``seq2seq_target``; docs/methods.md section 6).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from hashee.core.backbone import Backbone
from hashee.core.errors import ConfigError
from hashee.methods.base import ExitModule
from hashee.methods.registry import MethodContract, register
from hashee.tasks.spec import TaskSpec


def layers_for_target(num_layers: int, target_speedup: float | None) -> int:
    """k from a target speed-up (largest k with L / k >= target), or L // 2 without one."""
    if target_speedup is None:
        return max(1, num_layers // 2)
    if target_speedup <= 0:
        raise ConfigError(f"static: target_speedup must be > 0, got {target_speedup}")
    return max(1, min(num_layers, int(num_layers // target_speedup)))


@register(MethodContract(name="static", task_kinds=("classification", "regression", "generation"),
                          operating_point="derived", includes_full_model=True, pareto_reference=True))
class StaticExit(ExitModule):
    """First ``layers`` layers + pooler + linear; CE on layer k."""

    training_uses_target = True  # k is derived from the target before training
    # The class that runs generation tasks (docs/methods.md section 6), named here rather than in
    # conf/method/static.yaml so that the configs, hence the fingerprints, of recorded static runs stay as they were
    seq2seq_target = "baselines.seq2seq_static.Seq2SeqStatic"

    def __init__(self, spec: TaskSpec, backbone: Backbone, optim: Mapping[str, Any], layers: int | None = None,
                 target_speedup: float | None = None, name: str = "static") -> None:
        super().__init__(spec, backbone, optim, name=name)
        depth = self.encoder.num_layers
        self.layers = int(layers) if layers is not None else layers_for_target(
            depth, None if target_speedup is None else float(target_speedup))
        if not 1 <= self.layers <= depth:
            raise ConfigError(f"static: layers must be in 1..{depth} for this backbone, got {self.layers}")

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.encoder.forward_full(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                                           depth=self.layers)
        return self.head(hidden, batch["attention_mask"])

    def batch_flops(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.cost.full_flops(batch["attention_mask"].sum(dim=1), depth=self.layers)

    @property
    def head_layer(self) -> int:
        return self.layers
