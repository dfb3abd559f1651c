"""Planning once per batch: the same plans and the same logits as planning layer by layer, and dense plans
that compute padding only where it is cheaper than gathering."""

from __future__ import annotations

import copy

import pytest
import torch

from hashee.core.encoder import (DENSE_MAX_PADDING, MultiExitEncoder, exit_masks, fused_linear, make_gather, plan_layers,
                            plan_real)

DEPTH = 6


def _exits(mask: torch.Tensor, depth: int, seed: int, early: float) -> torch.Tensor:
    """Random exit layers, a share ``early`` of them at layer 1 (a high target), [CLS] at the last layer."""
    gen = torch.Generator().manual_seed(seed)
    exits = torch.randint(1, depth + 1, mask.shape, generator=gen)
    exits = torch.where(torch.rand(mask.shape, generator=gen) < early, 1, exits)
    exits[:, 0] = depth
    return torch.where(mask.bool(), exits, 0)


def _layer_by_layer(encoder: MultiExitEncoder, ids, mask, exits, depth, attend: bool) -> torch.Tensor:
    """The previous path: a plan per layer from its masks, each projection its own module (autograd on)."""
    real = mask.bool()
    with torch.enable_grad():
        hidden = encoder.embed(ids)
        for index in range(depth):
            active = real & (exits > index)
            if bool(active.any()):
                hidden = encoder.layer(index, hidden, make_gather(active, real if attend else None))
    return hidden.detach()


def _padded(mask: torch.Tensor, extra: int) -> torch.Tensor:
    return torch.cat([mask, torch.zeros(mask.shape[0], extra, dtype=mask.dtype)], dim=1)


@pytest.mark.parametrize("attend", [True, False])
def test_plans_equal_per_layer_make_gather(attend):
    """Packed plans (much padding) hold the very indices, slots and masks make_gather builds layer by layer,
    rows without queries included."""
    gen = torch.Generator().manual_seed(0)
    mask = torch.ones(5, 12, dtype=torch.long)
    for row, n in enumerate([12, 7, 3, 9, 1]):
        mask[row, n:] = 0
    exits = torch.where(mask.bool(), torch.randint(1, 5, mask.shape, generator=gen), 0)
    exits[4] = 0
    exits[4, 0] = 1  # a row whose only token leaves after layer 1: no queries later
    real = mask.bool()
    plans = plan_layers(exit_masks(real, exits, 4), real, attend)
    for index, plan in enumerate(plans):
        active = real & (exits > index)
        ref = make_gather(active, real if attend else None)
        assert not plan.dense and not plan.kv_dense
        for name in ("q_flat", "q_slot", "kv_flat", "kv_slot", "key_mask"):
            assert torch.equal(getattr(plan, name), getattr(ref, name)), (index, name)
        assert (plan.rows, plan.q_max, plan.kv_max, plan.shared) == (ref.rows, ref.q_max, ref.kv_max, ref.shared)


def test_dense_only_when_padding_is_small():
    mask = torch.ones(4, 10, dtype=torch.long)
    assert plan_real(mask).dense  # no padding
    mask[0, 9:] = 0
    assert plan_real(mask).dense  # 1 of 40 positions
    mask[:, 6:] = 0
    assert not plan_real(mask).dense and DENSE_MAX_PADDING < 16 / 40
    exits = torch.where(mask.bool(), 2, 0)
    assert not any(p.dense or p.kv_dense for p in plan_layers(exit_masks(mask.bool(), exits, 2), mask.bool()))


@pytest.mark.parametrize("attend", [True, False])
@pytest.mark.parametrize("early", [0.0, 0.5, 0.8])
@pytest.mark.parametrize("extra_padding", [0, 12])
def test_planned_once_equals_layer_by_layer_on_minilm(minilm_backbone, real_batch, attend, early, extra_padding):
    """Real MiniLM weights: logits of the plan-once path (fused projections, dense layers where padding is small)
    equal the layer-by-layer path to 1e-5, at low and high exit rates, with little and with much padding."""
    encoder = MultiExitEncoder(copy.deepcopy(minilm_backbone.model), pooling="mean").eval()
    ids, mask = real_batch["input_ids"], real_batch["attention_mask"]
    ids, mask = torch.cat([ids, torch.zeros(ids.shape[0], extra_padding, dtype=ids.dtype)], 1), _padded(mask, extra_padding)
    exits = _exits(mask, DEPTH, seed=int(early * 10), early=early)
    head = torch.nn.Linear(encoder.hidden_size, 3)
    with torch.no_grad():
        ours = head(encoder.pool(encoder.forward_token_exits(ids, mask, exits, DEPTH, attend_exited=attend), mask))
        ref = head(encoder.pool(_layer_by_layer(encoder, ids, mask, exits, DEPTH, attend), mask))
    assert torch.allclose(ours, ref, atol=1e-5)


def test_full_pass_dense_equals_packed(minilm_backbone, real_batch):
    encoder = MultiExitEncoder(minilm_backbone.model).eval()
    ids = real_batch["input_ids"][:, :6]
    mask = torch.ones_like(ids)
    with torch.no_grad():
        assert plan_real(mask).dense
        dense = encoder.forward_full(ids, mask)
        hidden = encoder.embed(ids)
        for index in range(encoder.num_layers):
            hidden = encoder.layer(index, hidden, make_gather(mask.bool()))
    assert torch.allclose(dense, hidden, atol=1e-5)


def test_fused_projection_follows_weight_updates(tiny_backbone):
    """The concatenated Q/K/V weights are rebuilt when a weight changes in place (an optimizer step)."""
    encoder = MultiExitEncoder(copy.deepcopy(tiny_backbone.model)).eval()
    parts = encoder.layout.parts(encoder.layers[0])[:3]
    weight, _ = fused_linear(parts)
    with torch.no_grad():
        parts[1].weight.add_(1.0)
    updated, _ = fused_linear(parts)
    assert not torch.equal(weight, updated)
    assert torch.equal(updated, torch.cat([p.weight for p in parts]))


def test_fused_projection_of_weights_made_in_inference_mode():
    """Parameters created under inference mode have no version counter: fused, not cached, still exact."""
    with torch.inference_mode():
        linears = (torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
        weight, bias = fused_linear(linears)
        x = torch.randn(3, 4)
        assert torch.allclose(torch.nn.functional.linear(x, weight, bias), torch.cat([m(x) for m in linears], dim=1))
