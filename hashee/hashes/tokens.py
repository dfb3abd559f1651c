"""What a hash is built from: the training split flattened, its type counts, and the protected ids."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import torch

from hashee.core.errors import ConfigError


@dataclass
class TrainTokens:
    """The training split flattened: token ids, lengths, per-example labels, and type counts."""

    flat_ids: torch.Tensor  # [T] int64, out-of-range ids mapped to vocab_size
    lengths: torch.Tensor  # [N] int64
    labels: torch.Tensor  # [N] float64
    counts: torch.Tensor  # [vocab_size] int64 occurrences
    protected: torch.Tensor  # [vocab_size + 1] bool: special, unseen or out of range -> depth
    vocab_size: int

    @property
    def hashed_types(self) -> torch.Tensor:
        """Ids of the seen, non-special types (ascending): the ones a hash orders."""
        return torch.nonzero(~self.protected[:-1]).squeeze(1)


def collect_train_tokens(
    train_ids: list[list[int]], train_labels: Sequence[float] | torch.Tensor, vocab_size: int, special_ids: set[int]
) -> TrainTokens:
    """Flatten the training sequences and count types; specials and unseen ids are protected."""
    if len(train_ids) == 0:
        raise ConfigError("cannot build a token hash from an empty training split")
    lengths = torch.tensor([len(seq) for seq in train_ids], dtype=torch.int64)
    flat = torch.tensor(list(itertools.chain.from_iterable(train_ids)), dtype=torch.int64)
    flat = torch.where((flat >= 0) & (flat < vocab_size), flat, torch.full_like(flat, vocab_size))
    labels = torch.as_tensor(train_labels, dtype=torch.float64).reshape(-1)
    if labels.numel() != len(train_ids):
        raise ConfigError(f"{labels.numel()} training labels for {len(train_ids)} training sequences")
    counts = torch.bincount(flat, minlength=vocab_size + 1)[:vocab_size]
    protected = torch.ones(vocab_size + 1, dtype=torch.bool)
    protected[:vocab_size] = counts == 0
    specials = torch.tensor([i for i in special_ids if 0 <= i < vocab_size], dtype=torch.int64)
    protected[specials] = True
    return TrainTokens(flat, lengths, labels, counts, protected, vocab_size)
