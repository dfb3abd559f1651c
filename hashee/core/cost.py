"""One cost definition for every method (docs/methods.md section 3): analytic FLOPs and wall-clock.

FLOPs count a multiply-add as 2. For a layer where a sequence has ``q`` tokens computed
and ``m`` tokens used as keys/values::

    4*q*d^2  (Q + attention-output projections)  +  4*m*d^2  (K + V projections)
  + 4*q*m*d  (scores + weighted sum)             +  4*q*d*f  (FFN)

A head costs its pooler (2*d^2) plus its classifier (2*d*C); an LTE unit costs 2*d. With mean
pooling (docs/methods.md section 2a) every evaluated head also pays ``n*d`` for the mean of the
sequence's ``n`` real tokens.
Padding never counts: every function takes real (non-pad) lengths or masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter
from typing import Any, Callable, Iterable

import torch
from scipy import stats


@dataclass(frozen=True)
class CostModel:
    """Analytic FLOPs of a BERT-family encoder with ``num_layers`` layers and heads of ``num_labels``."""

    hidden: int
    ffn: int
    num_layers: int
    num_labels: int
    pooling: str = "cls"

    @classmethod
    def from_config(cls, config: Any, num_labels: int, pooling: str = "cls") -> "CostModel":
        """Build from a Hugging Face config (hidden_size, intermediate_size, num_hidden_layers)."""
        return cls(config.hidden_size, config.intermediate_size, config.num_hidden_layers, num_labels, pooling)

    def layer_flops(self, q: torch.Tensor | float, m: torch.Tensor | float) -> torch.Tensor | float:
        """FLOPs of one layer computing ``q`` tokens against ``m`` keys/values (per sequence)."""
        d, f = self.hidden, self.ffn
        return 4 * q * d * d + 4 * m * d * d + 4 * q * m * d + 4 * q * d * f

    @property
    def pooler_flops(self) -> int:
        return 2 * self.hidden * self.hidden

    @property
    def classifier_flops(self) -> int:
        return 2 * self.hidden * self.num_labels

    @property
    def head_flops(self) -> int:
        """Pooler (dense + tanh) and linear classifier on one pooled vector (without the pooling itself)."""
        return self.pooler_flops + self.classifier_flops

    def pooling_flops(self, lengths: torch.Tensor | float) -> torch.Tensor | float:
        """FLOPs per evaluated head of forming the pooled vector: ``n*d`` for the mean, 0 for [CLS]."""
        return lengths * self.hidden if self.pooling == "mean" else 0 * lengths

    @property
    def lte_flops(self) -> int:
        """BERxiT's learning-to-exit unit: linear(d, 1)."""
        return 2 * self.hidden

    def full_flops(self, lengths: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """Per-sequence FLOPs of running ``depth`` (default all) full layers plus the final head."""
        depth = self.num_layers if depth is None else depth
        n = lengths.to(torch.float64)
        return depth * self.layer_flops(n, n) + self.head_flops + self.pooling_flops(n)

    def token_exit_flops(self, exit_layers: torch.Tensor, depth: int, attend_exited: bool = True) -> torch.Tensor:
        """Per-sequence FLOPs of token-level exits.

        ``exit_layers`` is ``[B, n]`` with each real token's exit layer in ``1..depth`` and 0 on
        padding. At layer ``l`` the computed tokens are those with exit >= l; keys/values are all
        real tokens (``attend_exited``) or only the computed ones.
        """
        e = exit_layers.to(torch.int64)
        real = (e > 0).sum(dim=1).to(torch.float64)
        total = torch.zeros(e.shape[0], dtype=torch.float64, device=e.device)
        for layer in range(1, depth + 1):
            q = (e >= layer).sum(dim=1).to(torch.float64)
            m = real if attend_exited else q
            total += self.layer_flops(q, m)
        return total + self.head_flops + self.pooling_flops(real)


def time_inference(run_batch: Callable[[Any], Any], batches: Iterable[Any], warmup: int = 2) -> float:
    """Seconds to run ``run_batch`` over every batch under ``torch.inference_mode``, after warm-up.

    The first ``warmup`` batches are run once untimed so that allocator and kernel caches are hot;
    then every batch (warm-up ones included) is timed in one pass.
    """
    batches = list(batches)
    with torch.inference_mode():
        for batch in batches[:warmup]:
            run_batch(batch)
        start = perf_counter()
        for batch in batches:
            run_batch(batch)
        return perf_counter() - start


def fastest_call(fn: Callable[[], Any], calls: int = 1, rounds: int = 5, warmup: int = 0) -> float:
    """Seconds per call of ``fn``: the fastest of ``rounds`` rounds of ``calls`` back-to-back calls, each round
    after ``warmup`` untimed calls (the best-of-rounds protocol of the microbenchmarks)."""
    best = float("inf")
    for _ in range(rounds):
        for _ in range(warmup):
            fn()
        start = perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (perf_counter() - start) / calls)
    return best


FIXED_COST_MAX_TOKENS = 1024  # fixed_batch_cost fits its line on sub-batches of at most this many real tokens


def fixed_batch_cost(run_batch: Callable[[Any], Any], batch: dict[str, torch.Tensor], rounds: int = 5,
                     max_tokens: int | None = FIXED_COST_MAX_TOKENS) -> dict[str, Any]:
    """The part of a batch's time that does not grow with its tokens, measured on the first k rows of ``batch``.

    ``run_batch`` (the full model) runs on k = 1, 2, 4, ... rows (all of the batch's width), fastest of ``rounds``;
    a least-squares line of time against real tokens gives the intercept, ``fixed_s``. On CPU it is mostly every
    layer's weights read from memory once per batch: a method that runs every layer pays it whatever its FLOPs.
    The line uses the row counts of at most ``max_tokens`` real tokens (always at least two; ``None``: every one):
    beyond that the layer's activations outgrow the cache, time per token rises, and a line through those points
    has a meaningless (even negative) intercept.
    """
    count = batch["input_ids"].shape[0]
    candidates = sorted({min(count, 2 ** i) for i in range(count.bit_length() + 1)})
    real = {k: int(batch["attention_mask"][:k].sum()) for k in candidates}
    rows = [k for k in candidates if max_tokens is None or real[k] <= max_tokens]
    rows = rows if len(rows) >= 2 else candidates[:2]
    tokens = [real[k] for k in rows]
    seconds = []
    with torch.inference_mode():
        for k in rows:
            sub = {name: value[:k] for name, value in batch.items() if torch.is_tensor(value)}
            run_batch(sub)  # warm-up
            seconds.append(fastest_call(lambda: run_batch(sub), calls=max(1, 32 // k), rounds=rounds))
    if len(rows) < 2:
        return {"rows": rows, "tokens": tokens, "seconds": seconds, "fixed_s": 0.0, "fixed_stderr_s": float("nan")}
    line = stats.linregress(tokens, seconds)
    return {"width": int(batch["input_ids"].shape[1]), "rows": rows, "tokens": tokens, "seconds": seconds,
            "max_tokens": max_tokens, "fixed_s": float(line.intercept), "fixed_stderr_s": float(line.intercept_stderr),
            "s_per_token": float(line.slope), "r2": float(line.rvalue ** 2)}


def efficiency_ceiling(full_s: float, fixed_s: float, flops_speedup: float, layers_run: float | None = None,
                       num_layers: int | None = None) -> float:
    """The most efficiency a method can reach that pays the fixed cost of the layers it runs and every other second
    in proportion to its FLOPs: full time / that method's time / FLOPs speed-up.

    ``fixed_s`` (of the full model's ``full_s``) is the full model's fixed cost per batch over all ``num_layers``
    layers (mostly every layer's weights read once per batch); a method that runs ``layers_run`` of them on each
    batch (HashEE: its calibrated depth; static: its k; the mean over batches for a method whose depth varies)
    pays ``fixed_s * layers_run / num_layers``. Without ``layers_run`` it pays all of it, as the full model does.
    """
    fixed = min(max(fixed_s, 0.0), full_s)
    method_fixed = fixed * layer_share(layers_run, num_layers)
    return full_s / (method_fixed + (full_s - fixed) / flops_speedup) / flops_speedup


def layer_share(layers_run: float | None, num_layers: int | None) -> float:
    """``layers_run / num_layers`` (1 when ``layers_run`` is None): the share of the full model's layers run."""
    if layers_run is None:
        return 1.0
    if not num_layers or not 0 < layers_run <= num_layers:
        raise ValueError(f"layers_run must be in (0, num_layers], got {layers_run} of {num_layers}")
    return layers_run / num_layers
