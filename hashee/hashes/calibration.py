"""Target mode's calibration: the depth and the geometric family parameter g whose FLOPs speed-up on a seeded
sample of training sequences is closest to the target (measured with :class:`~hashee.core.cost.CostModel`,
against all L layers)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hashee.core.cost import CostModel
from hashee.core.errors import ConfigError
from hashee.core.padding import pad_sequences
from hashee.hashes.layers import geometric_fractions, protected_table, split_by_mass
from hashee.hashes.table import TokenHash
from hashee.hashes.tokens import TrainTokens

CALIBRATION_SEQUENCES = 2000  # seeded sample of training sequences used to estimate speed-ups
LOG_G_BOUND = 40.0  # bisection range for log(g): exp(-40) ~ everything shallow, exp(40) ~ deep
BISECTION_STEPS = 60


@dataclass
class CalibrationSample:
    """A seeded, padded sample of training sequences and its full-model FLOPs (all L layers)."""

    input_ids: torch.Tensor  # [B, n]
    attention_mask: torch.Tensor  # [B, n]
    uniforms: torch.Tensor  # [B, n] fixed draws for per-occurrence hashes (common random numbers)
    full_flops: float


def calibration_sample(train_ids: list[list[int]], vocab_size: int, cost_model: CostModel, seed: int) -> CalibrationSample:
    """Up to :data:`CALIBRATION_SEQUENCES` training sequences, padded (ids out of range -> unseen)."""
    generator = torch.Generator().manual_seed(seed)
    picks = range(len(train_ids))
    if len(train_ids) > CALIBRATION_SEQUENCES:
        picks = torch.randperm(len(train_ids), generator=generator)[:CALIBRATION_SEQUENCES].tolist()
    ids, mask = pad_sequences([train_ids[i] for i in picks], 0, min_width=1)
    ids = torch.where((ids >= 0) & (ids < vocab_size), ids, vocab_size)
    uniforms = torch.rand(ids.shape, generator=generator)
    full = float(cost_model.full_flops(mask.sum(1)).sum())
    return CalibrationSample(ids, mask, uniforms, full)


def speedup(hash_: TokenHash, sample: CalibrationSample, cost_model: CostModel, attend_exited: bool) -> float:
    """FLOPs speed-up of ``hash_`` on the sample, against the full model (all L layers + head)."""
    layers = hash_.lookup(sample.input_ids, sample.attention_mask, sample.uniforms)
    cost = cost_model.token_exit_flops(layers, hash_.depth, attend_exited).sum()
    return sample.full_flops / float(cost)


@dataclass
class TargetFamily:
    """Builds a hash of depth D for a given log(g) from the hash's ordering."""

    name: str
    tokens: TrainTokens
    ordering: torch.Tensor | None  # None for random_per_occurrence
    seed: int

    def make(self, depth: int, log_g: float) -> TokenHash:
        fractions = geometric_fractions(depth, log_g)
        if self.ordering is None:
            return TokenHash(self.name, depth, protected_table(self.tokens, depth), {}, fractions, self.seed)
        table = protected_table(self.tokens, depth)
        buckets = split_by_mass(self.tokens.counts[self.ordering], fractions)
        table[self.ordering] = buckets + 1
        return TokenHash(self.name, depth, table, {})


def search_log_g(
    family: TargetFamily, depth: int, target: float, sample: CalibrationSample, cost_model: CostModel, attend_exited: bool
) -> tuple[float, float] | None:
    """Bisection on log(g) for ``target`` at ``depth``: (log_g, speed-up), or None if unreachable.

    The speed-up falls as g grows, in steps (types move between layers whole); the closest
    evaluated point is returned.
    """

    def measure(log_g: float) -> float:
        return speedup(family.make(depth, log_g), sample, cost_model, attend_exited)

    low, high = -LOG_G_BOUND, LOG_G_BOUND
    best = (low, measure(low))
    if best[1] < target:
        return None
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        value = measure(middle)
        if abs(value - target) < abs(best[1] - target):
            best = (middle, value)
        if value >= target:
            low = middle
        else:
            high = middle
    return best


def calibrate(
    family: TargetFamily, max_depth: int, target: float, sample: CalibrationSample, cost_model: CostModel, attend_exited: bool
) -> tuple[int, float, float]:
    """Largest depth <= ``max_depth`` at which ``target`` is reachable, and its (log_g, speed-up)."""
    for depth in range(max_depth, 0, -1):
        found = search_log_g(family, depth, target, sample, cost_model, attend_exited)
        if found is not None:
            return depth, found[0], found[1]
    raise ConfigError(
        f"target_speedup={target} is unreachable with hash {family.name!r} even at depth 1 "
        f"(attend_exited={attend_exited}); lower the target"
    )
