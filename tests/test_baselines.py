"""Instance-level baselines: exit rules, losses, stages, batched exits, FLOPs, calibration, end-to-end runs."""

from __future__ import annotations

import copy
import json
import math
import types
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from baselines.berxit import BERxiT
from baselines.common import LayerOutput, below, entropy
from baselines.deebert import DeeBERT
from baselines.pabee import PABEE
from baselines.pcee import PCEE
from baselines.static import StaticExit, layers_for_target
from hashee.core.backbone import Backbone
from hashee.core.errors import ConfigError
from hashee.core.operating_points import choose_operating_point
from hashee.tasks.spec import TaskSpec
from tests.conftest import REAL_TEXT

OPTIM = {"lr": 1e-3, "weight_decay": 0.01, "warmup_ratio": 0.0}
GLUE_FIXTURES = Path(__file__).parent / "fixtures" / "glue"
QUICK = ["eval.timing=false", "data.train_limit=48", "data.val_limit=24", "data.test_limit=24"]
LAYERS = 4  # the tiny backbone: d = 32, f = 64, 4 layers; C = 2


def make_spec(regression: bool = False, num_labels: int = 2) -> TaskSpec:
    metrics = ("pearson", "spearman") if regression else ("accuracy",)
    return TaskSpec(name="toy", source="local", num_labels=1 if regression else num_labels, is_regression=regression,
                    is_pair=False, metrics=metrics, primary_metric=metrics[0], label_names=None, test_split_name="test")


def fresh(backbone: Backbone) -> Backbone:
    """A private copy of a session backbone, so training in one test cannot leak into another."""
    return Backbone(backbone.name, copy.deepcopy(backbone.model), backbone.tokenizer, backbone.source)


def build(cls, backbone: Backbone, regression: bool = False, **knobs):
    torch.manual_seed(0)
    return cls(make_spec(regression), fresh(backbone), OPTIM, **knobs).eval()


def text_batch(backbone: Backbone, texts: list[str], regression: bool = False) -> dict[str, torch.Tensor]:
    batch = dict(backbone.tokenizer(texts, padding=True, return_tensors="pt"))
    labels = torch.arange(len(texts)) % 2
    batch["labels"] = labels.float() * 2.5 if regression else labels
    return batch


def record_of(layer_logits: list, scores: list | None = None) -> dict[str, torch.Tensor]:
    """A hand-made calibration record: ``layer_logits[layer][row]`` (and ``scores[layer][row]``)."""
    logits = torch.tensor(layer_logits, dtype=torch.float32)
    rows = logits.shape[1]
    score = torch.tensor(scores) if scores is not None else torch.full(logits.shape[:2], float("nan"))
    return {"logits": logits, "scores": score, "lengths": torch.full((rows,), 5),
            "labels": torch.zeros(rows, dtype=torch.long)}


def hand_layer_flops(n: int) -> int:
    """4nd^2 + 4nd^2 + 4n^2 d + 4ndf with d = 32, f = 64."""
    return 4 * n * 32 * 32 + 4 * n * 32 * 32 + 4 * n * n * 32 + 4 * n * 32 * 64


HEAD = 2 * 32 * 32 + 2 * 32 * 2  # pooler + classifier
LTE = 2 * 32


# -- entropy and exit rules -------------------------------------------------------------------

def test_entropy_is_fp32_exact_and_nan_safe():
    z = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [1000.0, 0.0]], dtype=torch.float16)
    p = torch.tensor([0.75, 0.25])
    expected = torch.tensor([math.log(2), float(-(p * p.log()).sum()), 0.0])
    got = entropy(z)
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=1e-3)
    assert torch.isnan(entropy(torch.tensor([[float("nan"), 0.0]]))).all()
    assert below(torch.tensor([0.1, float("nan"), 0.5]), 0.3).tolist() == [True, False, False]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_entropy_arithmetic_is_fp32_whatever_the_logits_dtype(dtype):
    """On these logits (offsets up to 40) fp16 arithmetic is off by ~4e-2 and bf16 by ~0.2, fp32 by ~5e-6:
    against a float64 reference of the same values, 5e-5 tells fp32 from any half-precision computation."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 3, generator=g, dtype=torch.float64) * 3 + torch.linspace(-40, 40, 64, dtype=torch.float64)[:, None]
    z = z.to(dtype)
    exact = z.double()
    reference = torch.logsumexp(exact, dim=-1) - (exact.softmax(dim=-1) * exact).sum(dim=-1)
    got = entropy(z)
    assert got.dtype == torch.float32
    assert (got.double() - reference).abs().max() < 5e-5


def test_deebert_exits_at_first_layer_with_entropy_below_s(tiny_backbone):
    module = build(DeeBERT, tiny_backbone)
    sure, unsure = [4.0, 0.0], [0.0, 0.0]  # entropies 0.0181 and ln 2 = 0.693
    nan = [float("nan"), 0.0]
    layers = [[unsure, sure, nan, unsure],
              [sure, unsure, nan, unsure],
              [unsure, unsure, nan, unsure],
              [unsure, unsure, unsure, unsure]]  # layer 4 = final
    record = record_of(layers, [entropy(torch.tensor(layer)).tolist() for layer in layers])
    logits, exits = module.simulate(record, 0.3)
    assert exits.tolist() == [2, 1, 4, 4]  # the NaN row runs to the last layer
    assert torch.equal(logits[1], torch.tensor(sure))
    assert module.simulate(record, 0.0)[1].tolist() == [4] * 4


def test_nan_entropy_never_exits_early_and_still_ends_at_last_layer(tiny_backbone):
    """Online inference: NaN internal logits (NaN entropy) -> every row runs to layer L with final logits."""
    module = build(DeeBERT, tiny_backbone, entropy_threshold=10.0)
    batch = text_batch(tiny_backbone, REAL_TEXT[:3])
    original = module.layer_head

    def nan_internal(index, hidden, mask):
        out = original(index, hidden, mask)
        if index < LAYERS - 1:
            nan = torch.full_like(out.logits, float("nan"))
            return LayerOutput(nan, entropy(nan))
        return out

    module.layer_head = nan_internal
    with torch.no_grad():
        logits, exits = module.exit_inference(batch)
        reference = module.full_logits(batch)
    assert exits.tolist() == [LAYERS] * 3
    assert torch.isfinite(logits).all() and torch.allclose(logits, reference, atol=1e-5)


def test_pabee_patience_counter(tiny_backbone):
    module = build(PABEE, tiny_backbone)
    a, b = [1.0, 0.0], [0.0, 1.0]
    layers = [[a, a, a, a], [a, b, a, b], [b, a, a, b], [b, b, a, b]]  # predictions per row: aabb, abab, aaaa, abbb
    record = record_of(layers)
    assert module.simulate(record, 1)[1].tolist() == [2, 4, 2, 3]
    assert module.simulate(record, 2)[1].tolist() == [4, 4, 3, 4]
    assert module.simulate(record, 3)[1].tolist() == [4, 4, 4, 4]  # needs 4 agreeing layers: layer L anyway
    assert module.simulate(record, 0)[1].tolist() == [4, 4, 4, 4]  # t = 0: never exit
    assert module.knob_grid == [1, 2, 3, 0]


def test_pabee_regression_agreement_uses_tau(tiny_backbone):
    module = build(PABEE, tiny_backbone, regression=True, regression_tau=0.1)
    layers = [[[0.50], [0.50]], [[0.55], [0.70]], [[0.90], [0.75]], [[0.90], [0.75]]]
    assert module.simulate(record_of(layers), 1)[1].tolist() == [2, 3]
    assert module.simulate(record_of(layers), 2)[1].tolist() == [4, 4]


def test_berxit_exits_at_first_lte_below_tau(tiny_backbone):
    module = build(BERxiT, tiny_backbone)
    zeros = [[0.0, 0.0]] * 3
    scores = [[0.8, 0.2, float("nan")], [0.4, 0.9, float("nan")], [0.1, 0.9, float("nan")], [float("nan")] * 3]
    record = record_of([zeros] * 4, scores)
    assert module.simulate(record, 0.5)[1].tolist() == [2, 1, 4]
    assert module.simulate(record, 0.15)[1].tolist() == [3, 4, 4]
    assert module.simulate(record, 0.0)[1].tolist() == [4, 4, 4]


def test_pcee_needs_consecutive_confident_layers(tiny_backbone):
    module = build(PCEE, tiny_backbone)
    sure, unsure = [4.0, 0.0], [0.0, 0.0]  # normalised entropies 0.026 and 1.0
    layers = [[sure, sure, unsure], [sure, unsure, sure], [unsure, sure, sure], [unsure] * 3]
    scores = [(entropy(torch.tensor(layer)) / math.log(2)).tolist() for layer in layers]
    assert module.simulate(record_of(layers, scores), 0.5)[1].tolist() == [2, 4, 3]


# -- training ------------------------------------------------------------------------------

def test_poolers_start_from_the_pretrained_pooler(tiny_backbone):
    for cls in (DeeBERT, BERxiT):
        module = build(cls, tiny_backbone)
        assert len(module.poolers) == LAYERS - 1
        for pooler in module.poolers:
            assert pooler is not module.encoder.pooler
            assert torch.equal(pooler.dense.weight, module.encoder.pooler.dense.weight)


def fit_steps(module, batches: list[dict[str, torch.Tensor]], steps: int = 2) -> None:
    trainer = pl.Trainer(max_steps=steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))


def test_deebert_stages_train_disjoint_parameters(tiny_backbone):
    module = build(DeeBERT, tiny_backbone)
    batches = [text_batch(tiny_backbone, REAL_TEXT[:4]), text_batch(tiny_backbone, REAL_TEXT[4:])]
    heads = {name for name, _ in module.named_parameters() if name.startswith(("poolers.", "classifiers."))}
    assert heads and module.training_stages() == ("final", "heads")
    for stage in module.training_stages():
        module.stage = stage
        before = {k: v.clone() for k, v in module.state_dict().items()}
        fit_steps(module, batches)
        changed = {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}
        if stage == "heads":
            assert changed and changed <= heads
        else:
            assert changed and not changed & heads
        optimized = {id(p) for group in module.trainable_parameters() for p in group["params"]}
        assert optimized == {id(p) for n, p in module.named_parameters() if (n in heads) == (stage == "heads")}


def test_fused_adamw_applies_the_default_update(tiny_backbone):
    """Every method trains with torch's fused AdamW (optim.fused, default true): the same update as the per-tensor
    loop, to float rounding, here over three steps of PABEE (every layer and head trained, decay groups apart)."""
    batch = text_batch(tiny_backbone, REAL_TEXT[:6])
    trained = {}
    for fused in (True, False):
        module = build(PABEE, tiny_backbone).train()
        module.optim = {**OPTIM, "fused": fused}
        module.trainer = types.SimpleNamespace(estimated_stepping_batches=3)
        optimizer = module.configure_optimizers()["optimizer"]
        assert bool(optimizer.defaults["fused"]) is fused
        for step in range(3):
            module.training_loss(batch, step).backward()
            optimizer.step()
            optimizer.zero_grad()
        trained[fused] = {k: v.detach().clone() for k, v in module.state_dict().items()}
    start = build(PABEE, tiny_backbone).state_dict()
    assert any(not torch.equal(trained[True][k], start[k]) for k in start)
    for key, value in trained[False].items():
        torch.testing.assert_close(trained[True][key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_deebert_stage2_loss_is_the_sum_of_internal_losses(tiny_backbone):
    module = build(DeeBERT, tiny_backbone)
    module.stage = "heads"
    batch = text_batch(tiny_backbone, REAL_TEXT[:4])
    with torch.no_grad():
        outs = module.all_layer_outputs(batch)
        expected = sum(F.cross_entropy(o.logits, batch["labels"]) for o in outs[:-1])
        assert torch.allclose(module.training_loss(batch, 0), expected)


def test_deebert_refuses_regression(tiny_backbone):
    with pytest.raises(ConfigError, match="regression"):
        build(DeeBERT, tiny_backbone, regression=True)


def fixed_outputs(module, outs: list[LayerOutput]) -> None:
    module.all_layer_outputs = lambda batch: outs


def test_pabee_loss_weights_layers_by_depth(tiny_backbone):
    module = build(PABEE, tiny_backbone)
    labels = torch.tensor([0])
    # CE of [z, 0] against class 0 is log(1 + e^-z); pick z so the per-layer CEs are easy to check.
    outs = [LayerOutput(torch.tensor([[z, 0.0]])) for z in (0.0, 1.0, 2.0, 3.0)]
    ce = [math.log(1 + math.exp(-z)) for z in (0.0, 1.0, 2.0, 3.0)]
    fixed_outputs(module, outs)
    expected = (1 * ce[0] + 2 * ce[1] + 3 * ce[2] + 4 * ce[3]) / 10
    assert module.training_loss({"labels": labels}, 0).item() == pytest.approx(expected, rel=1e-6)
    assert module.weighted_loss([torch.tensor(1.0)] * 4).item() == pytest.approx(1.0)


def test_berxit_alternates_by_batch_index_and_builds_lte_targets(tiny_backbone):
    module = build(BERxiT, tiny_backbone)
    labels = torch.tensor([0, 1])
    internal = [LayerOutput(torch.tensor([[2.0, 0.0], [1.0, 0.0]]), torch.tensor([0.2, 0.7])),  # right, wrong
                LayerOutput(torch.tensor([[0.0, 1.0], [0.0, 3.0]]), torch.tensor([0.5, 0.1])),  # wrong, right
                LayerOutput(torch.tensor([[0.0, 0.0], [0.0, 0.5]]), torch.tensor([0.9, 0.4]))]  # argmax 0: right, right
    final = LayerOutput(torch.tensor([[0.5, 0.0], [0.0, 0.5]]))
    fixed_outputs(module, internal + [final])
    targets = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    scores = torch.tensor([[0.2, 0.7], [0.5, 0.1], [0.9, 0.4]])
    lte = ((scores - targets) ** 2).mean()
    final_ce = F.cross_entropy(final.logits, labels)
    internal_ce = sum(F.cross_entropy(o.logits, labels) for o in internal)
    batch = {"labels": labels}
    for index in (0, 2, 10):
        assert torch.allclose(module.training_loss(batch, index), final_ce + lte)
    for index in (1, 3, 11):
        assert torch.allclose(module.training_loss(batch, index), internal_ce + lte)


def test_berxit_regression_lte_target_is_tanh_of_error(tiny_backbone):
    module = build(BERxiT, tiny_backbone, regression=True)
    target = module.lte_targets(torch.tensor([[1.0], [3.0], [2.0]]), torch.tensor([1.5, 1.0, 2.0]))
    assert torch.allclose(target, torch.tanh(torch.tensor([0.5, 2.0, 0.0])))


# -- batched inference ---------------------------------------------------------------------

def spread_heads(module, batch: dict[str, torch.Tensor] | None = None) -> None:
    """Scale the random heads (and centre them on ``batch``) so predictions and confidences differ between rows."""
    heads = [*module.classifiers, module.classifier]
    with torch.no_grad():
        for layer in heads:
            layer.weight.mul_(50.0)
        if hasattr(module, "lte"):
            module.lte.weight.mul_(50.0)
        if batch is not None:
            for layer, layer_logits in zip(heads, module.record([batch])["logits"]):
                layer.bias.sub_(layer_logits.mean(dim=0))


def mixing_knob(module, record) -> float | int:
    """A knob value under which rows exit at different layers, as far as possible from any recorded score."""
    if isinstance(module, PABEE):
        candidates = [(0.0, t) for t in module.knob_grid]
    else:
        v = record["scores"][:-1].flatten()
        v = v[~torch.isnan(v)].sort().values
        candidates = [(float(hi - lo), float(lo + hi) / 2) for lo, hi in zip(v[:-1], v[1:])]
    mixing = [(gap, knob) for gap, knob in candidates if len(set(module.simulate(record, knob)[1].tolist())) > 1]
    assert mixing, "no knob value makes rows exit at different layers"
    return max(mixing)[1]


@pytest.mark.parametrize("cls", [DeeBERT, PABEE, BERxiT])
def test_batched_exits_equal_batch_size_one_on_real_text(minilm_backbone, real_batch, cls):
    module = build(cls, minilm_backbone)
    batch = dict(real_batch, labels=torch.zeros(len(REAL_TEXT), dtype=torch.long))
    spread_heads(module, batch)
    record = module.record([batch])
    module.knob = mixing_knob(module, record)
    with torch.no_grad():
        logits, exits = module.exit_inference(batch)
        for row in range(len(REAL_TEXT)):
            n = int(batch["attention_mask"][row].sum())
            single = {k: v[row:row + 1, :n] for k, v in real_batch.items()}
            one_logits, one_exit = module.exit_inference(single)
            assert int(one_exit) == int(exits[row])
            assert torch.allclose(one_logits[0], logits[row], atol=1e-4)
    assert len(set(exits.tolist())) > 1, "the test needs rows exiting at different layers"
    sim_logits, sim_exits = module.simulate(record, module.knob)
    assert torch.equal(sim_exits, exits)
    assert torch.allclose(sim_logits, logits, atol=1e-4)


# -- cost ----------------------------------------------------------------------------------

def test_predict_with_flops_equals_the_hand_count(tiny_backbone):
    batch = text_batch(tiny_backbone, ["a b c", "a"])  # real lengths 5 and 3 ([CLS] ... [SEP])
    n = batch["attention_mask"].sum(dim=1).tolist()
    assert n == [5, 3]
    cases = [
        (build(DeeBERT, tiny_backbone, entropy_threshold=10.0), [hand_layer_flops(k) + HEAD for k in n]),
        (build(DeeBERT, tiny_backbone, entropy_threshold=-1.0), [4 * (hand_layer_flops(k) + HEAD) for k in n]),
        (build(BERxiT, tiny_backbone, lte_threshold=2.0), [hand_layer_flops(k) + HEAD + LTE for k in n]),
        (build(BERxiT, tiny_backbone, lte_threshold=0.0), [4 * (hand_layer_flops(k) + HEAD) + 3 * LTE for k in n]),
        (build(PABEE, tiny_backbone, patience=0), [4 * (hand_layer_flops(k) + HEAD) for k in n]),
        (build(StaticExit, tiny_backbone, layers=2), [2 * hand_layer_flops(k) + HEAD for k in n]),
    ]
    with torch.no_grad():
        for module, expected in cases:
            logits, flops = module.predict_with_flops(batch)
            assert flops.tolist() == expected, type(module).__name__
            assert torch.equal(module.batch_flops(batch), flops)
            assert logits.shape == (2, 2)


def test_pabee_flops_follow_each_rows_exit_layer(tiny_backbone):
    module = build(PABEE, tiny_backbone, patience=1)
    batch = text_batch(tiny_backbone, REAL_TEXT[:6])
    with torch.no_grad():
        _, exits = module.exit_inference(batch)
        _, flops = module.predict_with_flops(batch)
    n = batch["attention_mask"].sum(dim=1).tolist()
    assert flops.tolist() == [e * (hand_layer_flops(k) + HEAD) for e, k in zip(exits.tolist(), n)]


def test_static_layers_from_target():
    assert layers_for_target(12, None) == 6
    assert layers_for_target(12, 2.0) == 6
    assert layers_for_target(12, 1.5) == 8
    assert layers_for_target(4, 100.0) == 1


# -- operating points ----------------------------------------------------------------------

def test_choose_operating_point_closest_at_or_above():
    curve = [{"value": v, "flops_speedup": s, "primary": p} for v, s, p in
             [(0.1, 1.1, 0.9), (0.2, 1.4, 0.8), (0.3, 1.6, 0.7), (0.4, 2.5, 0.6)]]
    assert choose_operating_point(curve, 1.5) == (curve[2], True)
    assert choose_operating_point(curve, 1.4) == (curve[1], True)
    assert choose_operating_point(curve, 3.0) == (curve[3], False)


class ValOnlyData:
    """A data module whose test split must never be read."""

    def __init__(self, batches):
        self.batches = batches

    def eval_batches(self, split: str):
        if split != "val":
            raise AssertionError(f"calibration read the {split} split")
        return self.batches

    def test_dataloader(self):
        raise AssertionError("calibration read the test split")


@pytest.mark.parametrize("cls", [DeeBERT, PABEE, BERxiT, PCEE])
def test_calibration_uses_validation_only_and_sets_the_knob(tiny_backbone, cls):
    module = build(cls, tiny_backbone)
    spread_heads(module)
    data = ValOnlyData([text_batch(tiny_backbone, REAL_TEXT[:4]), text_batch(tiny_backbone, REAL_TEXT[4:])])
    chosen = module.calibrate(data, 1.5)
    curve = chosen["val_curve"]
    assert len(curve) == len(module.knob_grid)
    point, reached = choose_operating_point(curve, 1.5)
    assert chosen["value"] == point["value"] == module.knob and chosen["reached_target"] == reached
    if reached:
        assert chosen["val_flops_speedup"] >= 1.5
        assert chosen["val_flops_speedup"] == min(p["flops_speedup"] for p in curve if p["flops_speedup"] >= 1.5)
    # the operating point's speed-up is what inference at that knob really costs on the same split
    with torch.no_grad():
        flops = sum(float(module.predict_with_flops(b)[1].sum()) for b in data.batches)
        full = sum(float(module.full_flops(b).sum()) for b in data.batches)
    assert full / flops == pytest.approx(chosen["val_flops_speedup"], rel=1e-9)
    default = module.calibrate(data, None)
    assert default["reached_target"] is None


def test_static_has_no_operating_point(tiny_backbone):
    module = build(StaticExit, tiny_backbone, layers=2)
    assert module.calibrate(ValOnlyData([]), 1.5) == {}
    assert module.evaluation_curve([]) is None


# -- end to end ----------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["static", "deebert", "pabee", "berxit"])
def test_end_to_end_tiny_run(run_tiny, tmp_path, method):
    run_tiny(f"method={method}", "target_speedup=1.5", *QUICK)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "complete"
    assert results["method"] == method
    assert_finite_metrics(results)
    info = results["method_info"]
    assert "operating_point" in info
    if method == "static":
        assert results["cost"]["flops_speedup"] > 1.0
        return
    # every run checks batched per-sample exits against batch-size-1 inference on the reported split
    assert results["cost"]["batch1_identical_predictions"] is True and results["cost"]["batch1_flops_equal"]
    assert results["cost"]["batch1_time_s"] > 0
    point = info["operating_point"]
    assert point["knob"] and isinstance(point["reached_target"], bool) and point["val_curve"]
    assert info["test_curve"] and {"value", "primary", "flops_speedup", "metrics"} <= set(info["test_curve"][0])
    assert results["val_flops_speedup"] == pytest.approx(point["val_flops_speedup"], rel=1e-9)


def assert_finite_metrics(results: dict) -> None:
    """Every metric in results.json (reported and validation splits, every curve point) is a finite number:
    a NaN correlation is a failure, not a value."""
    assert results["metrics"] and results["val_metrics"]
    seen = []

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("metrics", "val_metrics") and isinstance(value, dict):
                    for name, number in value.items():
                        seen.append(number)
                        assert isinstance(number, (int, float)) and math.isfinite(number), (f"{path}.{key}", name, number)
                elif key in ("primary", "val_primary") and value is not None:
                    assert math.isfinite(value), (f"{path}.{key}", value)
                else:
                    walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")

    walk(results, "results")
    assert len(seen) >= len(results["metrics"]) + len(results["val_metrics"])


def test_end_to_end_regression_run(run_tiny, tmp_path):
    """STS-B (regression): BERxiT's tanh LTE target, trained and calibrated end to end, finite correlations."""
    results = run_tiny("method=berxit", "task=stsb", f"data.glue_dir={GLUE_FIXTURES}", "data.val_size=8",
                       "target_speedup=1.5", *QUICK)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["status"] == "complete"
    assert results["method_info"]["operating_point"]["val_curve"]
    assert {"pearson", "spearman"} <= set(saved["metrics"])
    assert_finite_metrics(saved)


def test_threshold_grid_adds_validation_score_quantiles(tiny_backbone):
    """Entropies bunched just below ln 2 (weak shallow heads) still get thresholds between them."""
    module = build(DeeBERT, tiny_backbone)
    bunched = 0.69 + 0.003 * torch.rand(3, 50)
    scores = torch.cat([bunched, torch.full((1, 50), float("nan"))])  # layer L has no score
    grid = module.grid_with_score_quantiles({"scores": scores})
    inside = [v for v in grid if 0.69 <= v <= 0.693]
    assert len(inside) >= 20 and grid == sorted(grid)
    assert set(module.knob_grid) <= set(grid)
