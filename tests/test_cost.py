"""Analytic FLOPs (docs/methods.md section 3) against torch's FLOP counter on the matrix products."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hashee.core import cost as cost_module
from hashee.core.cost import CostModel, efficiency_ceiling, fastest_call, fixed_batch_cost, time_inference
from hashee.core.encoder import MultiExitEncoder


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _setup(backbone, pooling="cls"):
    encoder = MultiExitEncoder(backbone.model, pooling=pooling).eval()
    encoder.attention_impl = "math"  # SDPA on CPU is invisible to the counter; math is identical
    head = torch.nn.Linear(encoder.hidden_size, 3)
    cost = CostModel.from_config(backbone.model.config, num_labels=3, pooling=pooling)
    return encoder, head, cost


def _matmul_flops(cost: CostModel, analytic: float, n: int) -> float:
    """The analytic count without the mean pooling's n*d additions (the counter sees matrix products only)."""
    return analytic - float(cost.pooling_flops(torch.tensor([float(n)]))[0])


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_full_model_flops_match_counter_exactly(minilm_backbone, real_batch, pooling):
    encoder, head, cost = _setup(minilm_backbone, pooling)
    row = {k: v[2:3, : int(real_batch["attention_mask"][2].sum())] for k, v in real_batch.items()}
    n = row["input_ids"].shape[1]

    def run():
        hidden = encoder.forward_full(row["input_ids"], row["attention_mask"], row["token_type_ids"])
        head(encoder.pool(hidden, row["attention_mask"]))

    counted = _counted(run)
    analytic = float(cost.full_flops(torch.tensor([n])))
    assert counted == _matmul_flops(cost, analytic, n)
    assert analytic - counted == (n * cost.hidden if pooling == "mean" else 0)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_token_exit_flops_match_counter_exactly_for_attend_and_drop(minilm_backbone, real_batch, pooling):
    encoder, head, cost = _setup(minilm_backbone, pooling)
    n = int(real_batch["attention_mask"][2].sum())
    ids = real_batch["input_ids"][2:3, :n]
    mask = torch.ones_like(ids)
    exits = torch.tensor([[6] + [1, 2, 3, 4, 5, 6, 1, 1, 2, 3] * 10][0][:n]).unsqueeze(0)
    exits[0, 0] = 6
    for attend in (True, False):
        def run():
            head(encoder.pool(encoder.forward_token_exits(ids, mask, exits, 6, attend_exited=attend), mask))

        counted = _counted(run)
        analytic = float(cost.token_exit_flops(exits, 6, attend_exited=attend))
        assert counted == _matmul_flops(cost, analytic, n), (attend, counted, analytic)


def test_layer_flops_formula_and_padding_free():
    cost = CostModel(hidden=4, ffn=16, num_layers=2, num_labels=2)
    assert cost.layer_flops(3, 5) == 4 * 3 * 16 + 4 * 5 * 16 + 4 * 3 * 5 * 4 + 4 * 3 * 4 * 16
    exits = torch.tensor([[2, 1, 1, 0, 0], [2, 2, 2, 2, 2]])
    per_seq = cost.token_exit_flops(exits, depth=2)
    expected0 = cost.layer_flops(3, 3) + cost.layer_flops(1, 3) + cost.head_flops
    assert float(per_seq[0]) == expected0
    assert float(per_seq[1]) == float(cost.full_flops(torch.tensor([5]))[0])


def test_time_inference_runs_every_batch():
    seen = []
    seconds = time_inference(seen.append, [1, 2, 3], warmup=2)
    assert seen == [1, 2, 1, 2, 3] and seconds >= 0


def test_fastest_call_keeps_the_fastest_round_per_call(monkeypatch):
    clock, durations, calls = [0.0], iter([0.5, 0.5, 0.2, 0.2, 0.9, 0.9]), []
    monkeypatch.setattr(cost_module, "perf_counter", lambda: clock[0])

    def fn():
        calls.append(1)
        if len(calls) % 3 != 1:  # each round's first call is its warm-up: untimed, it takes no clock time here
            clock[0] += next(durations)

    assert fastest_call(fn, calls=2, rounds=3, warmup=1) == pytest.approx(0.2)
    assert len(calls) == 9


def test_efficiency_ceiling_is_one_without_a_fixed_cost_and_falls_with_it():
    assert efficiency_ceiling(10.0, 0.0, 2.0) == pytest.approx(1.0)
    # 1 s of 10 fixed: the method takes 1 + 9 / 2 = 5.5 s, measured 10 / 5.5 = 1.818x for FLOPs 2x
    assert efficiency_ceiling(10.0, 1.0, 2.0) == pytest.approx(10 / 5.5 / 2)
    assert efficiency_ceiling(10.0, 1.0, 3.0) < efficiency_ceiling(10.0, 1.0, 2.0)  # the fixed part weighs more
    assert efficiency_ceiling(10.0, 10.0, 2.0) == pytest.approx(0.5)  # all fixed: no speed-up at all
    assert efficiency_ceiling(10.0, -0.5, 2.0) == pytest.approx(1.0)  # a negative intercept (noise) counts as none


def test_fixed_batch_cost_recovers_the_intercept_of_a_known_cost(monkeypatch):
    """A fake model that takes 3 ms per batch plus 1 ms per real token, on a fake clock: the intercept is the 3 ms."""
    clock = [0.0]
    monkeypatch.setattr(cost_module, "perf_counter", lambda: clock[0])
    batch = {"input_ids": torch.ones(8, 3, dtype=torch.long), "attention_mask": torch.ones(8, 3, dtype=torch.long)}
    batch["attention_mask"][:, 2] = 0  # two real tokens per row: padding is not counted as tokens
    seen_rows = set()

    def run(sub):
        seen_rows.add(sub["input_ids"].shape[0])
        clock[0] += 0.003 + 0.001 * int(sub["attention_mask"].sum())

    fixed = fixed_batch_cost(run, batch, rounds=2)
    assert seen_rows == {1, 2, 4, 8} and fixed["tokens"] == [2, 4, 8, 16] and fixed["width"] == 3
    assert fixed["fixed_s"] == pytest.approx(0.003, abs=0.0015)
    assert fixed["s_per_token"] == pytest.approx(0.001, rel=0.3)
    # the line keeps sub-batches of at most max_tokens real tokens, and always two row counts
    assert fixed_batch_cost(run, batch, rounds=1, max_tokens=8)["tokens"] == [2, 4, 8]
    assert fixed_batch_cost(run, batch, rounds=1, max_tokens=1)["rows"] == [1, 2]
