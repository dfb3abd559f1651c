"""A row's logits and exit layer do not depend on its batch companions, for EVERY method.

Each row is run alone (a one-row batch, no padding) and inside a padded batch of other rows (one of
them a duplicate, an exact tie between rows). The instance-level methods are run at knobs inside the
distribution of the rows' own exit scores: the median score (a knob equal to a score), knobs within
1e-6 of it, and other quantiles.

Float rounding differs between the two runs (other matrix shapes: ~1e-7), so a score that lies
within that noise of the knob could fall on either side of it. The rule that makes the decision
deterministic (``baselines.common``): a decision within ``NEAR_TIE`` of flipping (a score that close
to the knob; for PABEE, top-two logits that close, or for regression a difference that close to
tau) is a near-tie, and the row is then decided by batch-size-1 inference of that row alone. Every
other decision has a margin far above the rounding noise, so it is the same in any batch.
"""

from __future__ import annotations

import pytest
import torch

from baselines.common import NEAR_TIE, LayerwiseExitModule, below, near
from baselines.pabee import PABEE
from baselines.pcee import PCEE
from hashee.tasks.metrics import predictions
from tests.conftest import REAL_TEXT
from tests.test_baselines import build, spread_heads
from tests.test_flops_exact import METHODS, build_method

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per test
TEXTS = [*REAL_TEXT, REAL_TEXT[3]]  # the duplicate ties row 3 exactly


def padded_batch(backbone, texts=TEXTS) -> dict[str, torch.Tensor]:
    batch = dict(backbone.tokenizer(texts, padding=True, return_tensors="pt"))
    batch["labels"] = torch.zeros(len(texts), dtype=torch.long)
    return batch


def alone(batch: dict[str, torch.Tensor], row: int) -> dict[str, torch.Tensor]:
    """Row ``row`` as a one-row batch without padding."""
    n = int(batch["attention_mask"][row].sum())
    return {k: v[row:row + 1, :n] if v.dim() == 2 else v[row:row + 1] for k, v in batch.items()}


def spread_module(method: str, backbone, pooling: str, batch: dict[str, torch.Tensor]):
    module = build_method(method, backbone, pooling, num_labels=2)
    module.encoder.attention_impl = "sdpa"
    if isinstance(module, LayerwiseExitModule):
        spread_heads(module, batch)
    return module


def inside_knobs(module, batch: dict[str, torch.Tensor]) -> list:
    """Knobs inside the rows' score distribution: the median score, within 1e-6 of it, other quantiles."""
    if isinstance(module, PABEE) and not isinstance(module, PCEE):
        return list(range(1, module.num_layers))
    scores = module.record([batch])["scores"][:-1].flatten()
    scores = scores[~torch.isnan(scores)].double()
    median = float(scores.median())  # a recorded score: an exact tie with one row at one layer
    quartiles = torch.quantile(scores, torch.tensor([0.25, 0.75], dtype=torch.float64)).tolist()
    return [median, median + 5e-7, median - 5e-7, *quartiles]


def outputs(module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        out = module.predict_outputs(batch)
    return out["logits"], out["exit_layer"]


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("method", METHODS)
def test_a_rows_logits_and_exit_do_not_depend_on_its_batch(tiny_backbone, method, pooling):
    batch = padded_batch(tiny_backbone)
    module = spread_module(method, tiny_backbone, pooling, batch)
    layerwise = isinstance(module, LayerwiseExitModule)
    knobs = inside_knobs(module, batch) if layerwise else [None]
    layers_seen = set()
    for knob in knobs:
        if layerwise:
            module.knob = knob
        logits, exits = outputs(module, batch)
        layers_seen.update(exits.tolist())
        for row in range(len(TEXTS)):
            one_logits, one_exit = outputs(module, alone(batch, row))
            assert float(one_exit[0]) == float(exits[row]), (method, knob, row)
            assert torch.allclose(one_logits[0], logits[row], rtol=1e-5, atol=1e-5), (method, knob, row)
        assert exits[3] == exits[-1] and torch.allclose(logits[3], logits[-1], atol=1e-6)  # the duplicate rows
    if layerwise:
        assert len(layers_seen) > 1, f"the knobs should spread the rows over several exit layers: {layers_seen}"


def first_layer_scores(module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer-1 exit scores of every row: inside the batch (what batched inference sees) and alone."""
    with torch.no_grad():
        together = module.all_layer_outputs(batch)[0].score
        single = torch.cat([module.all_layer_outputs(alone(batch, r))[0].score for r in range(len(TEXTS))])
    return together, single


@pytest.mark.parametrize("method", ["deebert", "berxit"])
def test_a_near_tie_is_decided_by_the_row_alone(tiny_backbone, method):
    """A knob between a row's batched and alone layer-1 scores: float rounding alone decides the exit,
    so without the near-tie rule the batched exit differs from the alone one. With it, they are equal."""
    batch = padded_batch(tiny_backbone)
    module = spread_module(method, tiny_backbone, "mean", batch)
    together, single = first_layer_scores(module, batch)
    differ = (together != single).nonzero(as_tuple=True)[0].tolist()
    if not differ:
        pytest.skip("on this platform rounding made no layer-1 score differ between the batch and the row alone")
    for row in differ:
        assert (together[row] - single[row]).abs() <= NEAR_TIE  # rounding noise is far below the rule's margin
        module.knob = float(torch.maximum(together[row], single[row]))  # one of the two is below it, not the other
        logits, exits = outputs(module, batch)
        one_logits, one_exit = outputs(module, alone(batch, row))
        assert float(one_exit[0]) == float(exits[row]), row
        assert torch.equal(one_logits[0], logits[row]), row  # decided by the very same batch-size-1 inference


def test_a_pabee_prediction_tie_is_decided_by_the_row_alone(tiny_backbone):
    """Layer-1 logits of a row tied so closely that rounding gives it one class in the batch and the other
    alone: with patience 1 the exits would differ; the near-tie rule decides the row alone."""
    batch = padded_batch(tiny_backbone)
    module = spread_module("pabee", tiny_backbone, "mean", batch)
    module.knob, row = 1, 0
    head = module.classifiers[0]
    with torch.no_grad():
        logits = module.all_layer_outputs(batch)[0].logits[row].double()
        base = head.bias.clone()
        found = False
        for step in range(-20, 21):  # shift class 1 onto class 0, a few rounding steps either way
            head.bias.copy_(base + torch.tensor([0.0, float(logits[0] - logits[1]) + step * 2e-7 * float(logits.abs().max())]))
            together = module.all_layer_outputs(batch)[0].logits[row]
            single = module.all_layer_outputs(alone(batch, row))[0].logits[0]
            if int(together.argmax()) != int(single.argmax()):
                found = True
                break
    if not found:
        pytest.skip("on this platform no bias gave the row different layer-1 predictions in the batch and alone")
    logits, exits = outputs(module, batch)
    one_logits, one_exit = outputs(module, alone(batch, row))
    assert float(one_exit[0]) == float(exits[row])
    assert torch.equal(one_logits[0], logits[row])


def test_a_pcee_near_tie_is_decided_by_the_row_alone(tiny_backbone):
    """PCEE's score is the normalised entropy, its knob tau. With patience 1 the layer-1 decision is the exit: a tau
    between a row's batched and alone layer-1 entropies would make the row exit at layer 1 on one side and run on
    on the other. The near-tie rule decides it alone, so the batch gives the alone result.

    Mutation caught: PCEE without its own ``near_tie`` (inheriting PABEE's top-two-logits rule, blind to an entropy
    near tau), or a ``near_tie`` that flags nothing: the batched exit layer then differs from the alone one."""
    batch = padded_batch(tiny_backbone)
    module = spread_module("pcee", tiny_backbone, "mean", batch)
    module.patience = 1
    together, single = first_layer_scores(module, batch)
    differ = (together != single).nonzero(as_tuple=True)[0].tolist()
    if not differ:
        pytest.skip("on this platform rounding made no layer-1 entropy differ between the batch and the row alone")
    for row in differ:
        assert (together[row] - single[row]).abs() <= NEAR_TIE
        module.knob = float(torch.maximum(together[row], single[row]))
        # the premise: the two entropies fall on either side of tau, so rounding alone would decide the exit
        assert bool(below(together[row:row + 1], module.knob)) != bool(below(single[row:row + 1], module.knob))
        logits, exits = outputs(module, batch)
        one_logits, one_exit = outputs(module, alone(batch, row))
        assert float(one_exit[0]) == float(exits[row]), row
        assert torch.equal(one_logits[0], logits[row]), row


def regression_differences(module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """|layer-2 prediction - layer-1 prediction| of every row (what PABEE compares with tau), in the batch and alone,
    in the dtype of its exit state (fp32)."""
    def difference(outs) -> torch.Tensor:
        return (predictions(module.spec, outs[1].logits) - predictions(module.spec, outs[0].logits)).float().abs()

    with torch.no_grad():
        together = difference(module.all_layer_outputs(batch))
        single = torch.cat([difference(module.all_layer_outputs(alone(batch, r))) for r in range(len(TEXTS))])
    return together, single


def test_a_regression_near_tie_is_decided_by_the_row_alone(tiny_backbone):
    """PABEE on a regression task, patience 1: a row exits at layer 2 when its layer-2 and layer-1 predictions
    differ by less than tau. With tau between that difference in the batch and alone, rounding alone would decide
    the exit; the near-tie rule (a difference within NEAR_TIE of tau) decides it alone.

    Mutation caught: PABEE's ``near_tie`` without its regression case (``near(|prediction - previous|, tau)``
    replaced by no near-tie at all, or by the classification rule on the predictions): the batched exit layer then
    differs from the alone one."""
    batch = padded_batch(tiny_backbone)
    module = build(PABEE, tiny_backbone, regression=True, patience=1)
    module.encoder.attention_impl = "sdpa"
    spread_heads(module, batch)
    together, single = regression_differences(module, batch)
    differ = (together != single).nonzero(as_tuple=True)[0].tolist()
    if not differ:
        pytest.skip("on this platform rounding made no prediction difference differ in the batch and alone")
    for row in differ:
        assert near(together[row:row + 1], single[row]).all()  # rounding noise, far below the rule's margin
        module.regression_tau = float(torch.maximum(together[row], single[row]))
        assert bool(together[row] < module.regression_tau) != bool(single[row] < module.regression_tau)  # the premise
        logits, exits = outputs(module, batch)
        one_logits, one_exit = outputs(module, alone(batch, row))
        assert float(one_exit[0]) == float(exits[row]), row
        assert torch.equal(one_logits[0], logits[row]), row
    # away from any near-tie the batch decides on its own, and still as each row alone would
    module.regression_tau = float(together.median()) + 1e-3
    logits, exits = outputs(module, batch)
    for row in range(len(TEXTS)):
        one_logits, one_exit = outputs(module, alone(batch, row))
        assert float(one_exit[0]) == float(exits[row]), row
        assert torch.allclose(one_logits[0], logits[row], rtol=1e-5, atol=1e-5), row
    assert len(set(exits.tolist())) > 1, f"tau should split the rows between layer 2 and later: {exits.tolist()}"


def test_calibration_knobs_stay_clear_of_the_validation_scores(tiny_backbone):
    """Score quantiles are scores themselves; calibration replays the rule over the recorded (batched) scores,
    so a knob on a score would be a near-tie there. Each knob is moved into the gap just below that score,
    which keeps every decision (the score itself still does not exit) and leaves no near-tie."""
    module = build_method("deebert", tiny_backbone, "mean", num_labels=2)
    internal = torch.linspace(0.1, 0.6, 41).reshape(1, 41).repeat(3, 1)  # 41 quantile levels: each a score
    record = {"scores": torch.cat([internal, torch.full((1, 41), float("nan"))])}
    grid = module.grid_with_score_quantiles(record)
    distinct = internal.flatten().unique()
    assert len(grid) >= 41 and set(module.knob_grid) - {0.1, 0.2, 0.3, 0.4, 0.5, 0.6} <= set(grid)
    for knob in grid:
        assert not near(distinct, knob).any(), knob
        exact = min(distinct.tolist(), key=lambda s: abs(s - knob))  # the decisions of a knob on that score
        if abs(exact - knob) < 1e-3:
            assert torch.equal(below(distinct, knob), below(distinct, exact)), knob
