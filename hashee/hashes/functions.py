"""The hash functions, one class per name (:data:`HASH_FUNCTIONS`): how each orders the hashed token types
from shallow to deep (target mode) and buckets them (paper mode).

- ``random``: a seeded random bucket per vocabulary id (paper mode), a seeded random order (target mode);
- ``random_per_occurrence``: no order at all, a fresh draw for every occurrence;
- ``frequency``: by training frequency, descending;
- ``mi``: by mutual information with the label, descending (needs labels);
- ``cluster``: by k-means cluster over the word embeddings, then embedding norm (needs the embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from hashee.core.errors import ConfigError
from hashee.hashes.cluster import cluster_ordering, cluster_ranks
from hashee.hashes.layers import ordering_buckets
from hashee.hashes.settings import HashSettings
from hashee.hashes.tokens import TrainTokens


def stable_sort_desc(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``ids`` (ascending) sorted by ``scores`` descending, ties kept by id."""
    order = torch.sort(scores, descending=True, stable=True).indices
    return ids[order]


def frequency_ordering(tokens: TrainTokens) -> torch.Tensor:
    """Hashed types by training frequency, descending (ties by id)."""
    types = tokens.hashed_types
    return stable_sort_desc(tokens.counts[types].to(torch.float64), types)


def label_classes(tokens: TrainTokens, num_labels: int, is_regression: bool, mi_bins: int) -> tuple[torch.Tensor, int]:
    """Per-example class ids for MI: the label itself, or its quantile bin for regression."""
    if is_regression:
        inner = torch.linspace(0, 1, mi_bins + 1, dtype=torch.float64)[1:-1]
        edges = torch.quantile(tokens.labels, inner)
        return torch.bucketize(tokens.labels, edges, right=True), mi_bins
    classes = tokens.labels.round().to(torch.int64)
    if bool(((classes < 0) | (classes >= num_labels)).any()) or not torch.equal(classes.double(), tokens.labels):
        raise ConfigError(f"mi hash: classification labels must be integers in 0..{num_labels - 1}")
    return classes, num_labels


def mutual_information(token_ids: torch.Tensor, token_classes: torch.Tensor, vocab_size: int, num_classes: int) -> torch.Tensor:
    """Per-type MI(x) = sum_y p(x,y) log(p(x,y) / (p(x) p(y))), over every token occurrence."""
    joint = torch.bincount(token_ids * num_classes + token_classes, minlength=(vocab_size + 1) * num_classes)
    joint = joint.reshape(vocab_size + 1, num_classes).to(torch.float64)
    p_xy = joint / joint.sum()
    p_x = p_xy.sum(1, keepdim=True)
    p_y = p_xy.sum(0, keepdim=True)
    ratio = torch.where(p_xy > 0, p_xy / (p_x * p_y).clamp_min(1e-300), torch.ones_like(p_xy))
    return (p_xy * torch.log(ratio)).sum(1)[:vocab_size]


def mi_ordering(tokens: TrainTokens, num_labels: int, is_regression: bool, mi_bins: int) -> torch.Tensor:
    """Hashed types by MI with the label, descending (ties by id)."""
    classes, num_classes = label_classes(tokens, num_labels, is_regression, mi_bins)
    token_classes = torch.repeat_interleave(classes, tokens.lengths)
    mi = mutual_information(tokens.flat_ids, token_classes, tokens.vocab_size, num_classes)
    types = tokens.hashed_types
    return stable_sort_desc(mi[types], types)


def random_ordering(tokens: TrainTokens, seed: int) -> torch.Tensor:
    """Hashed types in a seeded random order."""
    types = tokens.hashed_types
    generator = torch.Generator().manual_seed(seed)
    return types[torch.randperm(types.numel(), generator=generator)]


@dataclass(frozen=True)
class HashInputs:
    """What a hash may read besides the training tokens: the label space and, for a hash that reads them,
    the checked word embeddings (``clusters``: k of the target-mode ordering) and their fingerprint."""

    num_labels: int
    is_regression: bool
    embeddings: torch.Tensor | None = None
    fingerprint: dict[str, Any] | None = None
    clusters: int | None = None


class HashFunction:
    """How a hash orders the hashed token types (target mode) and buckets them (paper mode).

    The default buckets cut the ordering by the settings' ``balance`` (equal types or equal token mass)."""

    needs_labels = False  # reads the task's labels (generation tasks have none)
    reads_embeddings = False  # reads the backbone's word embeddings

    def ordering(self, tokens: TrainTokens, settings: HashSettings, inputs: HashInputs) -> torch.Tensor | None:
        """Shallow-to-deep ordering of the hashed types; None: no ordering (a draw per occurrence)."""
        raise NotImplementedError

    def paper_buckets(self, tokens: TrainTokens, settings: HashSettings, num_buckets: int,
                      inputs: HashInputs) -> torch.Tensor | None:
        """Bucket per vocabulary id of a consistent hash; None for a draw per occurrence."""
        ordering = self.ordering(tokens, settings, inputs)
        bucket_of_type = torch.zeros(tokens.vocab_size, dtype=torch.int64)
        bucket_of_type[ordering] = ordering_buckets(ordering, tokens.counts, num_buckets, settings.balance)
        return bucket_of_type

    def extras(self, inputs: HashInputs) -> dict[str, Any]:
        """What the hash's description adds (which inputs it read)."""
        return {}


class RandomHash(HashFunction):
    def ordering(self, tokens: TrainTokens, settings: HashSettings, inputs: HashInputs) -> torch.Tensor:
        return random_ordering(tokens, settings.seed)

    def paper_buckets(self, tokens: TrainTokens, settings: HashSettings, num_buckets: int,
                      inputs: HashInputs) -> torch.Tensor:
        generator = torch.Generator().manual_seed(settings.seed)
        return torch.randint(num_buckets, (tokens.vocab_size,), generator=generator)


class RandomPerOccurrenceHash(HashFunction):
    def ordering(self, tokens: TrainTokens, settings: HashSettings, inputs: HashInputs) -> None:
        return None

    def paper_buckets(self, tokens: TrainTokens, settings: HashSettings, num_buckets: int, inputs: HashInputs) -> None:
        return None


class FrequencyHash(HashFunction):
    def ordering(self, tokens: TrainTokens, settings: HashSettings, inputs: HashInputs) -> torch.Tensor:
        return frequency_ordering(tokens)


class MutualInformationHash(HashFunction):
    needs_labels = True

    def ordering(self, tokens: TrainTokens, settings: HashSettings, inputs: HashInputs) -> torch.Tensor:
        return mi_ordering(tokens, inputs.num_labels, inputs.is_regression, settings.mi_bins)


class ClusterHash(HashFunction):
    reads_embeddings = True

    def ordering(self, tokens: TrainTokens, settings: HashSettings, inputs: HashInputs) -> torch.Tensor:
        ranks, norms = cluster_ranks(inputs.embeddings, inputs.clusters, settings.kmeans_iters, settings.seed)
        return cluster_ordering(tokens, ranks, norms)

    def paper_buckets(self, tokens: TrainTokens, settings: HashSettings, num_buckets: int,
                      inputs: HashInputs) -> torch.Tensor:
        ranks, _ = cluster_ranks(inputs.embeddings, num_buckets, settings.kmeans_iters, settings.seed)
        return ranks

    def extras(self, inputs: HashInputs) -> dict[str, Any]:
        return {"embedding_fingerprint": inputs.fingerprint}


HASH_FUNCTIONS: dict[str, HashFunction] = {
    "random": RandomHash(),
    "random_per_occurrence": RandomPerOccurrenceHash(),
    "frequency": FrequencyHash(),
    "mi": MutualInformationHash(),
    "cluster": ClusterHash(),
}
HASH_NAMES = tuple(HASH_FUNCTIONS)
LABEL_FREE_HASHES = tuple(name for name, function in HASH_FUNCTIONS.items() if not function.needs_labels)


def hash_function(name: str) -> HashFunction:
    """The hash function called ``name``, or a one-line ConfigError listing the known ones."""
    if name not in HASH_FUNCTIONS:
        raise ConfigError(f"hash.name={name!r} is unknown; choose one of {', '.join(HASH_NAMES)}")
    return HASH_FUNCTIONS[name]
