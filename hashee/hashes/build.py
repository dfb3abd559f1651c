"""Build a token hash for HashEE (docs/methods.md section 1) from the TRAINING split: map every token id to an exit layer.

A hash function (:mod:`hashee.hashes.functions`) yields an ordering of the seen, non-special token types
from shallow to deep, or buckets. Two ways to turn it into exit layers:

* paper mode: ``num_buckets`` K buckets on a depth D, bucket k -> layer ``1 + k * max(1, D // K)``;
* target mode: the depth D and a one-parameter family (token mass at layer e proportional to
  ``g ** (e - 1)``) are chosen so that the FLOPs speed-up on the training tokens is close to
  ``target_speedup`` (:mod:`hashee.hashes.calibration`).

Special ids and ids never seen in training exit at D, position 0 ([CLS]) always exits at D,
and padding gets 0.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from hashee.core.cost import CostModel
from hashee.core.errors import ConfigError
from hashee.hashes.calibration import CalibrationSample, TargetFamily, calibrate, calibration_sample, speedup
from hashee.hashes.cluster import check_embeddings, embedding_fingerprint
from hashee.hashes.functions import HashFunction, HashInputs, hash_function
from hashee.hashes.layers import (bucket_layers, bucket_sizes, geometric_fractions, protected_table, table_from_buckets,
                                  train_exit_histogram, type_mass_by_layer)
from hashee.hashes.settings import BALANCES, HashSettings
from hashee.hashes.table import TokenHash
from hashee.hashes.tokens import TrainTokens, collect_train_tokens


def validate_settings(settings: HashSettings, num_layers: int) -> None:
    """Raise :class:`ConfigError` (one line) on an impossible setting."""
    hash_function(settings.name)  # known
    if settings.balance not in BALANCES:
        raise ConfigError(f"hash.balance={settings.balance!r} is unknown; choose one of {', '.join(BALANCES)}")
    if settings.num_buckets is not None and settings.num_buckets < 1:
        raise ConfigError(f"hash.num_buckets={settings.num_buckets} must be >= 1")
    if settings.depth is not None and not 1 <= settings.depth <= num_layers:
        raise ConfigError(f"hash depth={settings.depth} must be in 1..{num_layers} (backbone layers)")
    if settings.target_speedup is not None and not settings.target_speedup > 1:
        raise ConfigError(f"target_speedup={settings.target_speedup} must be > 1")
    if settings.mi_bins < 2:
        raise ConfigError(f"hash.mi_bins={settings.mi_bins} must be >= 2")
    if settings.kmeans_iters < 1:
        raise ConfigError(f"hash.kmeans_iters={settings.kmeans_iters} must be >= 1")


def build_paper_hash(
    settings: HashSettings, function: HashFunction, tokens: TrainTokens, num_layers: int, inputs: HashInputs
) -> tuple[TokenHash, dict[str, Any]]:
    """Paper mode: K buckets on depth D, evenly spaced exit layers."""
    depth = settings.depth or num_layers
    num_buckets = settings.num_buckets or depth
    layers = bucket_layers(depth, num_buckets)
    bucket_of_type = function.paper_buckets(tokens, settings, num_buckets, inputs)
    if bucket_of_type is None:
        probs = torch.zeros(depth, dtype=torch.float64)
        probs.index_add_(0, torch.tensor(layers) - 1, torch.full((num_buckets,), 1.0 / num_buckets, dtype=torch.float64))
        hash_ = TokenHash(settings.name, depth, protected_table(tokens, depth), {}, probs, settings.seed)
        hashed_mass = int(tokens.counts[tokens.hashed_types].sum())
        types = [tokens.hashed_types.numel() / num_buckets] * num_buckets
        extras = {"bucket_types": types, "bucket_token_mass": [hashed_mass / num_buckets] * num_buckets}
    else:
        hash_ = TokenHash(settings.name, depth, table_from_buckets(tokens, depth, bucket_of_type, layers), {})
        types, mass = bucket_sizes(bucket_of_type, tokens, num_buckets)
        extras = {**function.extras(inputs), "bucket_types": types, "bucket_token_mass": mass}
    info = {"mode": "paper", "num_buckets": num_buckets, "layer_per_bucket": layers, **extras}
    return hash_, info


def build_target_hash(
    settings: HashSettings,
    function: HashFunction,
    tokens: TrainTokens,
    num_layers: int,
    inputs: HashInputs,
    sample: CalibrationSample,
    cost_model: CostModel,
) -> tuple[TokenHash, dict[str, Any]]:
    """Target mode: the depth and g whose train FLOPs speed-up is closest to the target."""
    ordering = function.ordering(tokens, settings, inputs)
    family = TargetFamily(settings.name, tokens, ordering, settings.seed)
    max_depth = settings.depth or num_layers
    target = float(settings.target_speedup)
    depth, log_g, _ = calibrate(family, max_depth, target, sample, cost_model, settings.attend_exited)
    hash_ = family.make(depth, log_g)
    fractions = geometric_fractions(depth, log_g).tolist()
    info: dict[str, Any] = {
        "mode": "target",
        "num_buckets": depth,
        "layer_per_bucket": list(range(1, depth + 1)),
        "g": math.exp(log_g),
        "log_g": log_g,
        "layer_mass_fractions": fractions,
    }
    if ordering is None:
        hashed_mass = int(tokens.counts[tokens.hashed_types].sum())
        info["bucket_types"] = [tokens.hashed_types.numel() * f for f in fractions]
        info["bucket_token_mass"] = [hashed_mass * f for f in fractions]
    else:
        info["bucket_types"], info["bucket_token_mass"] = type_mass_by_layer(hash_, tokens)
    info.update(function.extras(inputs))
    return hash_, info


def build_token_hash(
    settings: HashSettings,
    *,
    train_ids: list[list[int]],
    train_labels: Sequence[float] | torch.Tensor,
    num_labels: int,
    is_regression: bool,
    vocab_size: int,
    special_ids: set[int],
    word_embeddings: torch.Tensor | None,
    cost_model: CostModel,
) -> TokenHash:
    """Build a hash from the TRAINING split (sequences with [CLS]/[SEP], no padding).

    ``describe()`` then holds: name, depth, mode, num_buckets, layer_per_bucket, bucket_types,
    bucket_token_mass, train_exit_histogram, expected_train_speedup, target_speedup, g (target),
    layer_mass_fractions (target), embedding_fingerprint (cluster), attend_exited, seed.
    """
    num_layers = cost_model.num_layers
    validate_settings(settings, num_layers)
    tokens = collect_train_tokens(train_ids, train_labels, vocab_size, special_ids)
    function = hash_function(settings.name)
    inputs = HashInputs(num_labels, is_regression)
    if function.reads_embeddings:
        k = settings.num_buckets or settings.depth or num_layers
        inputs = HashInputs(num_labels, is_regression, check_embeddings(word_embeddings, vocab_size, k),
                            embedding_fingerprint(word_embeddings), k)
    sample = calibration_sample(train_ids, vocab_size, cost_model, settings.seed)
    if settings.target_speedup is None:
        hash_, info = build_paper_hash(settings, function, tokens, num_layers, inputs)
    else:
        hash_, info = build_target_hash(settings, function, tokens, num_layers, inputs, sample, cost_model)
    hash_.seed = settings.seed
    hash_.reset_generator()
    hash_.info = {
        "name": settings.name,
        "depth": hash_.depth,
        "seed": settings.seed,
        "balance": settings.balance,
        "attend_exited": settings.attend_exited,
        "target_speedup": settings.target_speedup,
        "num_hashed_types": int(tokens.hashed_types.numel()),
        **info,
        "train_exit_histogram": train_exit_histogram(hash_, tokens),
        "expected_train_speedup": speedup(hash_, sample, cost_model, settings.attend_exited),
        "speedup_sample_sequences": int(sample.input_ids.shape[0]),
    }
    return hash_
