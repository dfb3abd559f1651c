"""Analytic FLOPs of EVERY method == FlopCounterMode on the matrix products (docs/methods.md section 3).

Every head, internal pooler, classifier and BERxiT's LTE unit is included. The counter sees matrix
products only, so the analytic count minus the mean pooling's ``n*d`` per evaluated head must equal
it exactly. Attention runs as explicit matmuls (``attention_impl = "math"``). Each sequence is run
alone (a one-row batch, no padding): an instance-level method then evaluates exactly one head after
each layer it runs, and the attention grid holds no padding slot, so the count is exact per sequence.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from baselines.berxit import BERxiT
from baselines.common import LayerwiseExitModule
from baselines.deebert import DeeBERT
from baselines.pabee import PABEE
from baselines.pcee import PCEE
from baselines.static import StaticExit
from hashee.core.backbone import Backbone
from hashee.hashes.table import TokenHash
from hashee.methods.full import FullModel
from hashee.methods.hashee import HashEE
from tests.conftest import REAL_TEXT
from tests.test_baselines import OPTIM, make_spec

METHODS = ("full", "static", "hashee", "hashee_drop", "deebert", "pabee", "berxit", "pcee")
LAYERWISE = {"deebert": DeeBERT, "pabee": PABEE, "berxit": BERxiT, "pcee": PCEE}
ROWS = {"tiny_backbone": REAL_TEXT[:3], "minilm_backbone": REAL_TEXT[2:3]}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per test


def with_pooling(backbone: Backbone, pooling: str) -> Backbone:
    """The session backbone's weights (shared, never modified here) with the pooled vector ``pooling``."""
    return Backbone(backbone.name, backbone.model, backbone.tokenizer, backbone.source, pooling)


def build_method(method: str, backbone: Backbone, pooling: str, num_labels: int = 3):
    """A module of ``method`` on ``backbone`` (eval mode, attention as explicit matmuls)."""
    torch.manual_seed(0)
    spec, shared = make_spec(num_labels=num_labels), with_pooling(backbone, pooling)
    depth = backbone.model.config.num_hidden_layers
    if method == "full":
        module = FullModel(spec, shared, OPTIM)
    elif method == "static":
        module = StaticExit(spec, shared, OPTIM, layers=max(1, depth // 2))
    elif method in ("hashee", "hashee_drop"):  # exited tokens attended to (default) or dropped from attention
        knobs = {"depth": depth - 1, "exited_tokens": "drop" if method == "hashee_drop" else "attend"}
        module = HashEE(spec, shared, OPTIM, hash={"name": "random"}, knobs=knobs)
        table = torch.randint(1, depth, (backbone.model.config.vocab_size + 1,),
                              generator=torch.Generator().manual_seed(1))
        module.token_hash = TokenHash("random", depth - 1, table, {})
    else:
        module = LAYERWISE[method](spec, shared, OPTIM)
    module.eval()
    module.encoder.attention_impl = "math"  # SDPA on CPU is invisible to the counter; math is the same product
    return module


def knob_values(module, batch: dict[str, torch.Tensor]) -> list:
    """Knobs that make rows exit at the first possible layer, never, and in between (the median score)."""
    if isinstance(module, PCEE) or not isinstance(module, PABEE):
        scores = module.record([dict(batch, labels=torch.zeros(len(batch["input_ids"])))])["scores"][:-1].flatten()
        median = float(scores[~torch.isnan(scores)].median())
        return [float("inf"), median, -1.0]
    return [1, 2, 0]


def counted(fn):
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = fn()
    return out, counter.get_total_flops()


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("backbone_name", ["tiny_backbone", "minilm_backbone"])
@pytest.mark.parametrize("method", METHODS)
def test_every_methods_flops_equal_the_counter_exactly(request, backbone_name, pooling, method):
    backbone = request.getfixturevalue(backbone_name)
    module = build_method(method, backbone, pooling)
    texts = ROWS[backbone_name]
    batch = dict(backbone.tokenizer(texts, padding=True, return_tensors="pt"))
    layerwise = isinstance(module, LayerwiseExitModule)
    knobs = knob_values(module, batch) if layerwise else [None]
    heads_seen = set()
    for knob in knobs:
        if layerwise:
            module.knob = knob
        for row in range(len(texts)):
            n = int(batch["attention_mask"][row].sum())
            single = {k: v[row:row + 1, :n] for k, v in batch.items()}
            out, count = counted(lambda: module.predict_outputs(single))
            analytic = float(out["flops"][0])
            # heads evaluated: one after every layer run (instance-level), else the one final head
            heads = int(out["exit_layer"][0]) if layerwise else 1
            heads_seen.add(heads)
            pooling_part = heads * n * module.cost.hidden if pooling == "mean" else 0
            assert float(module.cost.pooling_flops(torch.tensor(float(n)))) * heads == pooling_part
            assert count == analytic - pooling_part, (method, knob, row, heads, count, analytic)
    if layerwise:  # rows exited early and at the final layer: heads after several layers were counted
        assert len(heads_seen) > 1 and max(heads_seen) == module.num_layers, heads_seen
