"""The attention kernels agree with SDPA, and ``auto`` picks the small-grid kernel only where it is meant to."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hashee.core.attention import BMM_MAX_KEYS, attention, kernel_for


def grid(rows: int = 3, heads: int = 4, q: int = 5, m: int = 7, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Queries, keys and values as the encoder makes them: views of one projection, rows of unequal key counts."""
    gen = torch.Generator().manual_seed(seed)
    projected = torch.randn(rows, m, 3, heads, 8, generator=gen)
    query, key, value = projected.permute(2, 0, 3, 1, 4).unbind(0)
    counts = torch.tensor([m, m - 2, 1])[:rows]
    keep = (torch.arange(m)[None, :] < counts[:, None])[:, None, None, :]
    return query[:, :, :q], key, value, keep


@pytest.mark.parametrize("kernel", ["bmm", "math", "sdpa", "auto"])
@pytest.mark.parametrize("additive", [False, True])
def test_kernels_match_sdpa(kernel, additive):
    query, key, value, keep = grid()
    mask = keep
    if additive:  # a position bias per head, very negative where no key exists (MPNet's mask)
        bias = torch.randn(query.shape[0], query.shape[1], query.shape[2], key.shape[2])
        mask = bias.masked_fill(~keep, torch.finfo(torch.float32).min)
    expected = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    with torch.no_grad():
        got = attention(query, key, value, mask, 0.0, kernel)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)


def test_bmm_without_mask_and_one_query():
    query, key, value, _ = grid(q=1)
    with torch.no_grad():
        got = attention(query, key, value, None, 0.0, "bmm")
    assert torch.allclose(got, F.scaled_dot_product_attention(query, key, value), atol=1e-5)


def test_auto_uses_bmm_only_for_small_grids_at_inference():
    query = torch.zeros(2, 4, 5, 8)
    with torch.no_grad():
        assert kernel_for("auto", query, BMM_MAX_KEYS, 0.0) == "bmm"
        assert kernel_for("auto", query, BMM_MAX_KEYS + 1, 0.0) == "sdpa"   # long inputs: SDPA is faster
        assert kernel_for("auto", query, 10, 0.1) == "sdpa"                 # attention dropout
    with torch.enable_grad():
        assert kernel_for("auto", query, 10, 0.0) == "sdpa"                 # training keeps SDPA
    assert kernel_for("math", query, 10, 0.0) == "math" and kernel_for("sdpa", query, 10, 0.0) == "sdpa"
    with pytest.raises(ValueError, match="attention kernel must be one of"):
        kernel_for("flash", query, 10, 0.0)  # a misspelt kernel never falls back silently
