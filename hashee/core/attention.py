"""Scaled dot-product attention over the encoder's small per-row grids, with a kernel chosen for the shape.

Every kernel computes ``softmax(Q K^T / sqrt(d_h) + mask) V`` on ``[rows, heads, q, d_h]`` queries and
``[rows, heads, m, d_h]`` keys/values. The mask is boolean (True where a key exists) or additive (a position
bias, very negative where no key exists), broadcastable to ``[rows, heads, q, m]``.

- ``sdpa``: :func:`torch.nn.functional.scaled_dot_product_attention`.
- ``bmm``: two batched matrix products around an in-place softmax. On CPU, for the short sequences of
  sentence tasks, torch's SDPA kernel has a fixed cost per (row, head) that does not shrink with the number
  of queries: on 2 threads, 32 rows x 12 heads x 25 keys took it 2.1 ms for 25 queries and 1.8 ms for 10,
  against 1.0 and 0.6 ms here (docs/performance.md). From about 128 keys on SDPA is as fast or faster,
  and its memory does not grow with ``q x m``.
- ``math``: the same products written out, visible to FLOP counters (SDPA on CPU is not).
- ``auto`` (the encoders' default): ``bmm`` where it is the faster one (CPU, no autograd, no dropout, at most
  :data:`BMM_MAX_KEYS` keys), else ``sdpa``. Training (autograd on) always gets SDPA, so trained weights do
  not depend on this choice.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ATTENTION_KERNELS = ("auto", "sdpa", "bmm", "math")
BMM_MAX_KEYS = 128  # "auto" uses bmm up to this many keys per row (measured crossover on CPU, see module doc)


def mask_scores_(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``scores`` in place: the dtype's minimum where a boolean mask has no key, or plus an additive mask."""
    if mask is not None and mask.dtype == torch.bool:
        return scores.masked_fill_(~mask, torch.finfo(scores.dtype).min)
    return scores if mask is None else scores.add_(mask)


def bmm_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Attention as two batched matrix products (no dropout): the fast kernel for small grids on CPU."""
    rows, heads, q, d_h = query.shape
    m = key.shape[2]
    scores = torch.bmm(query.reshape(rows * heads, q, d_h), key.reshape(rows * heads, m, d_h).transpose(1, 2))
    scores = mask_scores_(scores.view(rows, heads, q, m).mul_(1.0 / math.sqrt(d_h)), mask)
    probs = torch.softmax(scores, dim=-1).view(rows * heads, q, m)
    return torch.bmm(probs, value.reshape(rows * heads, m, d_h)).view(rows, heads, q, d_h)


def math_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
                   dropout_p: float) -> torch.Tensor:
    """Explicit softmax(QK^T / sqrt(d_h) + mask) V: same result as SDPA, visible to FLOP counters."""
    scores = mask_scores_(query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1]), mask)
    probs = F.dropout(scores.softmax(dim=-1), p=dropout_p)
    return probs @ value


def kernel_for(impl: str, query: torch.Tensor, keys: int, dropout_p: float) -> str:
    """The kernel ``impl`` names, with ``auto`` resolved for this call (see the module docstring)."""
    if impl not in ATTENTION_KERNELS:
        raise ValueError(f"attention kernel must be one of {ATTENTION_KERNELS}, got {impl!r}")
    if impl != "auto":
        return impl
    small_cpu = query.device.type == "cpu" and keys <= BMM_MAX_KEYS
    return "bmm" if small_cpu and dropout_p == 0.0 and not torch.is_grad_enabled() else "sdpa"


def attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
              dropout_p: float = 0.0, impl: str = "auto") -> torch.Tensor:
    """``[rows, heads, q, d_h]`` context of ``query`` over ``key``/``value`` with the kernel ``impl`` names."""
    kernel = kernel_for(impl, query, key.shape[2], dropout_p)
    if kernel == "bmm":
        return bmm_attention(query, key, value, mask)
    if kernel == "math":
        return math_attention(query, key, value, mask, dropout_p)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout_p)
