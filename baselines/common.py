"""Shared pieces of the instance-level baselines: per-layer heads, row-level exits, operating points.

A :class:`LayerwiseExitModule` has one head per layer (head ``L`` is the final classifier) and an
exit rule that reads each layer's head output. The rule is written once, as one step
(:meth:`LayerwiseExitModule.exit_step`), and used by both

- batched inference (:meth:`LayerwiseExitModule.exit_inference`): every row exits on its own and
  exited rows leave the batch (hidden states and masks are sliced, the layer is re-planned), so
  compute really falls and a row's result does not depend on its companions;
- calibration: one full pass records every layer's output on the validation batches, then each
  knob value is simulated by replaying the same step over the records (no extra forward passes).

Near-ties. Float rounding depends on the batch a row is computed in (other matrix shapes), so a
row's scores move by ~1e-7 between batch compositions, and a score that close to the knob could
fall on either side of it. The rule that makes every decision independent of the batch: a decision
within :data:`NEAR_TIE` of flipping (:meth:`LayerwiseExitModule.near_tie`: a score that close to the
knob; PABEE: top-two logits that close, or a regression difference that close to tau) is a near-tie,
and the row is then decided by batch-size-1 inference of the row alone (its real tokens, no
padding), which is the reference; its FLOPs are that inference's. Any other decision has a margin
far above fp32 rounding, so it is the same in any batch. Calibration keeps its knobs clear of the
validation scores (:func:`clear_of_scores`), so that replaying the rule over the record equals inference.

FLOPs follow docs/methods.md section 3: every layer run (``layer_flops(n, n)``, n = real length) plus
every head evaluated after it (:meth:`LayerwiseExitModule.head_cost`, and with mean pooling the
``n*d`` of forming its pooled vector). Every head reads the encoder's pooled vector (section 2a).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from hashee.core.distributed import gather_examples
from hashee.core.encoder import plan_real
from hashee.core.errors import ConfigError
from hashee.core.operating_points import choose_operating_point
from hashee.data.classification import TaskDataModule
from hashee.methods.base import ExitModule, example_index
from hashee.tasks.metrics import compute_metrics

State = dict[str, torch.Tensor]

# Relative margin (absolute below 1) under which float rounding may flip an exit decision (fp32 inference).
NEAR_TIE = 1e-5


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Softmax entropy per row in fp32: ``logsumexp(z) - sum softmax(z) * z`` (NaN if the logits are)."""
    z = logits.float()
    return torch.logsumexp(z, dim=-1) - (z.softmax(dim=-1) * z).sum(dim=-1)


def below(values: torch.Tensor, threshold: float) -> torch.Tensor:
    """``values < threshold`` where a NaN value is never below (it means "do not exit here")."""
    return (values < threshold) & ~torch.isnan(values)


def near(values: torch.Tensor, edge: torch.Tensor | float) -> torch.Tensor:
    """Where ``values`` lie within :data:`NEAR_TIE` of ``edge`` (relative above 1): a decision rounding
    could flip. A NaN value or an infinite edge is never near."""
    values = values.double()
    edge = torch.as_tensor(edge, dtype=torch.float64, device=values.device)
    scale = torch.maximum(values.abs(), edge.abs()).clamp(min=1.0)
    return ((values - edge).abs() <= NEAR_TIE * scale) & torch.isfinite(edge)


def clear_of_scores(knob: float, scores: torch.Tensor) -> float:
    """``knob``, or where a score in ``scores`` (sorted, distinct, finite) is a near-tie of it, the middle
    of the gap just below the lowest such score (that score still does not exit, as with the knob on it)."""
    tied = near(scores, knob).nonzero(as_tuple=True)[0]
    if not tied.numel():
        return knob
    first = int(tied[0])
    score = float(scores[first])
    if first == 0:
        return score - 2 * NEAR_TIE * max(1.0, abs(score))
    return (float(scores[first - 1]) + score) / 2


def row_alone(batch: Mapping[str, torch.Tensor], row: int) -> dict[str, torch.Tensor]:
    """Row ``row`` of a batch as a one-row batch of its real tokens (no padding)."""
    real = batch["attention_mask"][row].bool()
    return {key: batch[key][row][real].unsqueeze(0) for key in ("input_ids", "attention_mask", "token_type_ids")
            if batch.get(key) is not None}


def pooler_copies(pooler: nn.Module, count: int) -> nn.ModuleList:
    """``count`` independent copies of the (already loaded, pretrained) pooler."""
    return nn.ModuleList(copy.deepcopy(pooler) for _ in range(count))


@dataclass
class LayerOutput:
    """What a layer's head produced for the rows it saw: logits ``[B, C]`` and an optional score ``[B]``."""

    logits: torch.Tensor
    score: torch.Tensor | None = None


@contextlib.contextmanager
def inference(module: nn.Module) -> Iterator[None]:
    """Eval mode and ``inference_mode`` for the block; the training flag is restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        module.train(was_training)


def drop_rows(keep: torch.Tensor, rows: torch.Tensor, hidden: torch.Tensor, mask: torch.Tensor,
              state: State) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, State]:
    """Keep only the rows flagged in ``keep`` (row ids, hidden states, masks, exit state), trimming padding."""
    index = keep.nonzero(as_tuple=True)[0]
    mask = mask.index_select(0, index)
    width = int(mask.any(dim=0).nonzero().max()) + 1
    return (rows.index_select(0, index), hidden.index_select(0, index)[:, :width], mask[:, :width],
            {k: v.index_select(0, index) for k, v in state.items()})


class LayerwiseExitModule(ExitModule):
    """Base of the row-level (instance) exit methods: one head per layer and a per-layer exit rule.

    Subclasses define :meth:`layer_head`, :meth:`exit_step`, :meth:`training_loss`, and set
    ``knob_name`` / ``self.knob`` (the value used by ``predict``) and ``self.knob_grid``.
    """

    knob_name = "knob"
    per_sample_exits = True
    # Methods that exit when a score (entropy, LTE output) is below the knob: calibration adds
    # quantiles of the validation scores to the grid, so that every speed-up is reachable even
    # where the scores bunch up (e.g. entropies just below ln C from weak shallow heads).
    threshold_knob = False
    score_quantiles = 40

    def __init__(self, spec: Any, backbone: Any, optim: Mapping[str, Any], name: str) -> None:
        super().__init__(spec, backbone, optim, name=name)
        self.num_layers = self.encoder.num_layers
        if self.num_layers < 2:
            raise ConfigError(f"{name}: instance-level exits need a backbone with at least 2 layers")
        self.knob: Any = None
        self.knob_grid: list[Any] = []
        self._val_layers: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    # -- to override -----------------------------------------------------------------------
    def layer_head(self, index: int, hidden: torch.Tensor, mask: torch.Tensor) -> LayerOutput:  # pragma: no cover
        """Head of layer ``index`` (0-based) on hidden states ``[B, n, d]`` with attention mask ``[B, n]``."""
        raise NotImplementedError

    def exit_step(self, index: int, out: LayerOutput, state: State, knob: Any) -> tuple[torch.Tensor, State]:
        """Whether each row exits after layer ``index`` (< L-1) given its head output; new per-row state."""
        raise NotImplementedError  # pragma: no cover - abstract

    def init_state(self, rows: int, device: torch.device) -> State:
        """Per-row exit state before layer 1 (e.g. PABEE's counter)."""
        return {}

    def near_tie(self, index: int, out: LayerOutput, state: State, knob: Any) -> torch.Tensor:
        """Rows whose decision after layer ``index`` (< L-1) float rounding could flip (``state``: before
        :meth:`exit_step`). Default: a score within :data:`NEAR_TIE` of the knob."""
        if out.score is None:
            return torch.zeros(out.logits.shape[0], dtype=torch.bool, device=out.logits.device)
        return near(out.score, knob)

    def head_cost(self, index: int) -> int:
        """FLOPs per sequence of what is evaluated after layer ``index`` (default: pooler + classifier),
        not counting the pooling itself (:meth:`CostModel.pooling_flops`, per evaluated head)."""
        return self.cost.head_flops

    def training_loss(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:  # pragma: no cover
        """The method's training loss on one mini-batch (``batch_idx``: index within the epoch)."""
        raise NotImplementedError

    def validation_primary(self, per_layer: list[dict[str, float]]) -> float:
        """The checkpoint-selection score from each layer's validation metrics (default: final layer)."""
        return per_layer[-1][self.spec.primary_metric]

    # -- passes ----------------------------------------------------------------------------
    def hidden_states(self, batch: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """Hidden states after each of the L layers, every row and real token computed."""
        hidden = self.encoder.embed(batch["input_ids"], batch.get("token_type_ids"))
        plan = plan_real(batch["attention_mask"])
        states = []
        for index in range(self.num_layers):
            hidden = self.encoder.layer(index, hidden, plan)
            states.append(hidden)
        return states

    def all_layer_outputs(self, batch: Mapping[str, torch.Tensor]) -> list[LayerOutput]:
        """Every layer's head output on the whole batch (no exit): training and calibration records."""
        mask = batch["attention_mask"]
        return [self.layer_head(i, h, mask) for i, h in enumerate(self.hidden_states(batch))]

    def exit_inference(self, batch: Mapping[str, torch.Tensor], knob: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, C]`` and exit layer ``[B]`` (1..L), each row exiting on its own.

        Exited rows are removed from the batch before the next layer runs, and the padded width is
        trimmed to the remaining rows, so later layers only compute what is still needed. A row whose
        decision is a near-tie (:meth:`near_tie`) leaves too, and is decided by inference of the row
        alone (one row, no padding: the reference, where no decision is handed on).
        """
        knob = self.knob if knob is None else knob
        mask = batch["attention_mask"].bool()
        reference = mask.shape[0] == 1 and bool(mask.all())
        hidden = self.encoder.embed(batch["input_ids"], batch.get("token_type_ids"))
        rows = torch.arange(mask.shape[0], device=mask.device)
        state = self.init_state(mask.shape[0], mask.device)
        logits = exit_layer = None
        plan = plan_real(mask)
        for index in range(self.num_layers):
            hidden = self.encoder.layer(index, hidden, plan)
            out = self.layer_head(index, hidden, mask)
            if logits is None:
                logits = out.logits.new_zeros(mask.shape[0], out.logits.shape[-1])
                exit_layer = torch.zeros(mask.shape[0], dtype=torch.long, device=mask.device)
            tied = torch.zeros_like(rows, dtype=torch.bool)
            if index == self.num_layers - 1:
                exits = torch.ones_like(rows, dtype=torch.bool)
            else:
                if not reference:
                    tied = self.near_tie(index, out, state, knob)
                exits, state = self.exit_step(index, out, state, knob)
                exits = exits & ~tied
                for row in rows[tied].tolist():
                    one_logits, one_exit = self.exit_inference(row_alone(batch, row), knob)
                    logits[row], exit_layer[row] = one_logits[0], one_exit[0]
            logits[rows[exits]] = out.logits[exits]
            exit_layer[rows[exits]] = index + 1
            leave = exits | tied
            if bool(leave.all()):
                break
            if bool(leave.any()):
                rows, hidden, mask, state = drop_rows(~leave, rows, hidden, mask, state)
                plan = plan_real(mask)
        return logits, exit_layer

    # -- cost ------------------------------------------------------------------------------
    def exit_flops(self, lengths: torch.Tensor, exit_layer: torch.Tensor) -> torch.Tensor:
        """FLOPs per sequence of running layers 1..exit_layer and every head evaluated after them."""
        n = lengths.to(torch.float64)
        cumulative = torch.tensor([0] + [self.head_cost(i) for i in range(self.num_layers)],
                                  dtype=torch.float64, device=lengths.device).cumsum(0)
        k = exit_layer.to(torch.long)
        return k.to(torch.float64) * (self.cost.layer_flops(n, n) + self.cost.pooling_flops(n)) + cumulative[k]

    # -- ExitModule interface ----------------------------------------------------------------
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.exit_inference(batch)[0]

    def predict_with_flops(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.predict_outputs(batch)
        return out["logits"], out["flops"]

    def predict_outputs(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits, exit_layer = self.exit_inference(batch)
        return {"logits": logits, "flops": self.exit_flops(batch["attention_mask"].sum(dim=1), exit_layer),
                "exit_layer": exit_layer.to(torch.float32)}

    def exit_head_logits(self, batches: list[Mapping[str, torch.Tensor]]) -> dict[int, torch.Tensor]:
        """Every layer's head on every example (one recording pass, no exits): ``{layer: [N, C]}``."""
        logits = self.record(batches)["logits"]
        return {index + 1: layer_logits for index, layer_logits in enumerate(logits)}

    def batch_flops(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.predict_with_flops(batch)[1]

    # -- operating points -------------------------------------------------------------------
    def record(self, batches: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """One pass: every layer's logits ``[L, N, C]`` and scores ``[L, N]`` (NaN if none), lengths, labels."""
        logits, scores, lengths, labels = [], [], [], []
        with inference(self):
            for batch in batches:
                outs = self.all_layer_outputs(batch)
                logits.append(torch.stack([o.logits.float().cpu() for o in outs]))
                scores.append(torch.stack([o.score.float().cpu() if o.score is not None
                                           else torch.full(o.logits.shape[:1], float("nan")) for o in outs]))
                lengths.append(batch["attention_mask"].sum(dim=1).cpu())
                labels.append(batch["labels"].cpu())
        return {"logits": torch.cat(logits, dim=1), "scores": torch.cat(scores, dim=1),
                "lengths": torch.cat(lengths), "labels": torch.cat(labels)}

    def simulate(self, record: Mapping[str, torch.Tensor], knob: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Replay the exit rule over recorded layers: (logits ``[N, C]``, exit layer ``[N]``)."""
        count = record["lengths"].shape[0]
        exit_layer = torch.zeros(count, dtype=torch.long)
        state = self.init_state(count, torch.device("cpu"))
        for index in range(self.num_layers - 1):
            out = LayerOutput(record["logits"][index], record["scores"][index])
            exits, state = self.exit_step(index, out, state, knob)
            exit_layer = torch.where((exit_layer == 0) & exits, index + 1, exit_layer)
        exit_layer = torch.where(exit_layer == 0, self.num_layers, exit_layer)
        logits = record["logits"][exit_layer - 1, torch.arange(count)]
        return logits, exit_layer

    def curve_point(self, record: Mapping[str, torch.Tensor], knob: Any) -> dict[str, Any]:
        """Metrics and FLOPs speed-up of one knob value on recorded batches."""
        logits, exit_layer = self.simulate(record, knob)
        metrics = compute_metrics(self.spec, logits, record["labels"])
        flops = float(self.exit_flops(record["lengths"], exit_layer).sum())
        full = float(self.cost.full_flops(record["lengths"]).sum())
        return {"knob": self.knob_name, "value": knob, "metrics": metrics, "primary": metrics[self.spec.primary_metric],
                "flops_speedup": full / flops, "mean_exit_layer": float(exit_layer.double().mean())}

    def curve(self, record: Mapping[str, torch.Tensor]) -> list[dict[str, Any]]:
        return [self.curve_point(record, knob) for knob in self.knob_grid]

    def evaluation_curve(self, batches: list[Mapping[str, torch.Tensor]]) -> list[dict[str, Any]]:
        """Quality vs FLOPs speed-up over the knob grid on ``batches`` (reported, never used to choose)."""
        return self.curve(self.record(batches))

    def grid_with_score_quantiles(self, record: Mapping[str, torch.Tensor]) -> list[float]:
        """The configured grid plus quantiles of the validation exit scores at layers < L (kept for the test curve),
        each kept clear of the validation scores (:func:`clear_of_scores`)."""
        scores = record["scores"][:-1].flatten().float()
        scores = scores[torch.isfinite(scores)]
        extra = []
        if scores.numel():
            levels = torch.linspace(0, 1, self.score_quantiles + 1, dtype=torch.float64)
            extra = torch.quantile(scores.double(), levels).tolist()
        distinct = torch.unique(scores.double())
        return sorted({clear_of_scores(round(float(v), 6), distinct) for v in [*self.knob_grid, *extra]})

    def calibrate(self, datamodule: TaskDataModule, target_speedup: float | None) -> dict[str, Any]:
        """Choose the knob on the validation split only; set it on the module and return the choice."""
        record = self.record(datamodule.eval_batches("val"))
        if self.threshold_knob:
            self.knob_grid = self.grid_with_score_quantiles(record)
        curve = self.curve(record)
        if target_speedup is None:
            point, reached = self.curve_point(record, self.knob), None
            note = "no target speed-up: the knob from the method config"
        else:
            point, reached = choose_operating_point(curve, target_speedup)
            note = ("closest FLOPs speed-up at or above the target" if reached
                    else "no knob value reaches the target: the fastest point")
        self.knob = point["value"]
        return {"knob": self.knob_name, "value": point["value"], "target_speedup": target_speedup,
                "val_flops_speedup": point["flops_speedup"], "val_primary": point["primary"],
                "reached_target": reached, "note": note, "val_curve": curve}

    # -- Lightning hooks -------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch, batch_idx)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["labels"].shape[0])
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        outs = self.all_layer_outputs(batch)
        logits = torch.stack([o.logits.detach().float().cpu() for o in outs], dim=1)  # [B, L, C]
        self._val_layers.append((example_index(batch, self._val_layers), logits, batch["labels"].cpu()))

    def on_validation_epoch_end(self) -> None:
        """Per-layer metrics of the whole validation split (under DDP: gathered from every rank)."""
        if not self._val_layers:
            return
        logits, labels = gather_examples(*(torch.cat([o[k] for o in self._val_layers]) for k in range(3)))
        logits = logits.transpose(0, 1)  # [L, N, C]
        self._val_layers.clear()
        per_layer = [compute_metrics(self.spec, layer_logits, labels) for layer_logits in logits]
        for index, metrics in enumerate(per_layer):
            self.log(f"val/layer{index + 1}_primary", metrics[self.spec.primary_metric])
        for key, value in per_layer[-1].items():
            self.log(f"val/{key}", value, prog_bar=key == self.spec.primary_metric)
        self.log("val/primary", self.validation_primary(per_layer))
