"""From an ordering or buckets to exit layers, and the description of a built hash.

Paper mode: ``num_buckets`` K buckets on a depth D, bucket k -> layer ``1 + k * max(1, D // K)``, the buckets
cut from an ordering by equal type counts or equal token mass. Target mode: the token mass at layer e is
proportional to ``g ** (e - 1)`` (:func:`geometric_fractions`). Protected ids (special, unseen) exit at D.
"""

from __future__ import annotations

import torch

from hashee.hashes.table import TokenHash, draw_layers
from hashee.hashes.tokens import TrainTokens


def bucket_layers(depth: int, num_buckets: int) -> list[int]:
    """Evenly spaced exit layers: bucket k -> 1 + k * max(1, D // K), clipped to D."""
    interval = max(1, depth // num_buckets)
    return [min(depth, 1 + k * interval) for k in range(num_buckets)]


def split_by_types(num_types: int, num_buckets: int) -> torch.Tensor:
    """Bucket of each position in an ordering: contiguous chunks of equal type counts (+-1)."""
    return torch.arange(num_types, dtype=torch.int64) * num_buckets // max(num_types, 1)


def split_by_mass(mass: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Bucket of each position in an ordering so bucket b holds ~``fractions[b]`` of the mass.

    A type goes to the bucket whose cumulative-fraction interval contains its mass midpoint.
    """
    mass = mass.to(torch.float64)
    total = mass.sum().clamp_min(1e-300)
    midpoints = (torch.cumsum(mass, 0) - mass / 2) / total
    bounds = torch.cumsum(fractions.to(torch.float64), 0)
    bounds = bounds / bounds[-1]
    buckets = torch.searchsorted(bounds[:-1].contiguous(), midpoints.contiguous(), right=True)
    return buckets.clamp(max=fractions.numel() - 1)


def ordering_buckets(ordering: torch.Tensor, counts: torch.Tensor, num_buckets: int, balance: str) -> torch.Tensor:
    """Bucket per position of an ordering (frequency, mi) under the ``balance`` rule."""
    if balance == "types":
        return split_by_types(ordering.numel(), num_buckets)
    return split_by_mass(counts[ordering], torch.ones(num_buckets, dtype=torch.float64))


def protected_table(tokens: TrainTokens, depth: int) -> torch.Tensor:
    """Table with protected ids at ``depth`` and 0 (to be filled) elsewhere."""
    return torch.where(tokens.protected, depth, 0).to(torch.int64)


def table_from_buckets(tokens: TrainTokens, depth: int, bucket_of_type: torch.Tensor, layers: list[int]) -> torch.Tensor:
    """Table from a bucket per vocabulary id; protected ids stay at ``depth``."""
    table = protected_table(tokens, depth)
    type_layers = torch.tensor(layers, dtype=torch.int64)[bucket_of_type]
    hashed = tokens.hashed_types
    table[hashed] = type_layers[hashed]
    return table


def geometric_fractions(depth: int, log_g: float) -> torch.Tensor:
    """Share of token mass per exit layer 1..D, proportional to g^(e-1)."""
    logits = torch.arange(depth, dtype=torch.float64) * log_g
    return torch.softmax(logits, 0)


def train_exit_histogram(hash_: TokenHash, tokens: TrainTokens) -> list[int]:
    """Token counts per exit layer 1..D over the whole training split (index e - 1)."""
    layers = hash_.table[tokens.flat_ids]
    if hash_.layer_probs is not None:
        uniforms = torch.rand(layers.shape, generator=torch.Generator().manual_seed(hash_.seed + 1))
        layers = torch.where(layers == 0, draw_layers(hash_.layer_probs, uniforms), layers)
    starts = torch.cumsum(tokens.lengths, 0) - tokens.lengths
    layers[starts[tokens.lengths > 0]] = hash_.depth
    return torch.bincount(layers, minlength=hash_.depth + 1)[1:].tolist()


def type_mass_by_layer(hash_: TokenHash, tokens: TrainTokens) -> tuple[list[int], list[int]]:
    """Number of hashed types and their training occurrences per exit layer 1..D (consistent hashes)."""
    types = tokens.hashed_types
    layers = hash_.table[types]
    type_counts = torch.bincount(layers, minlength=hash_.depth + 1)[1:]
    mass = torch.bincount(layers, weights=tokens.counts[types].double(), minlength=hash_.depth + 1)[1:]
    return type_counts.tolist(), [int(m) for m in mass.tolist()]


def bucket_sizes(bucket_of_type: torch.Tensor, tokens: TrainTokens, num_buckets: int) -> tuple[list[int], list[int]]:
    """Number of hashed types and their training occurrences per bucket."""
    types = tokens.hashed_types
    buckets = bucket_of_type[types]
    type_counts = torch.bincount(buckets, minlength=num_buckets)
    mass = torch.bincount(buckets, weights=tokens.counts[types].double(), minlength=num_buckets)
    return type_counts.tolist(), [int(m) for m in mass.tolist()]
