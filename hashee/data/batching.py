"""Batches for every data module: length-grouped batch plans (shardable over DDP ranks), padding, and rows
that carry their position in the split."""

from __future__ import annotations

import json
import logging
import math
import random
from typing import Any, Iterator, Mapping

import datasets
import torch
from torch.utils.data import Sampler

from hashee.core.padding import pad_sequences

log = logging.getLogger(__name__)


class LengthGroupedSampler(Sampler[list[int]]):
    """Batches of similar lengths: shuffle, cut into pools of ``pool`` batches, sort each pool by length.

    Deterministic for a seed and an epoch (``set_epoch``); batch order is shuffled too.

    Distributed (``world_size`` > 1): every rank computes the same batch plan from seed + epoch and
    takes every ``world_size``-th batch from position ``rank``, so the ranks' shares are disjoint.
    The plan is first padded by repeating its batches from the start until its length is a multiple
    of ``world_size`` (every rank must run the same number of steps); only those repeated batches
    are seen twice in an epoch. With ``hydra.verbose=hashee.data`` each rank logs its batches.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, shuffle: bool = True, pool: int = 50,
                 rank: int = 0, world_size: int = 1, name: str = "") -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size} processes")
        self.lengths, self.batch_size, self.seed, self.shuffle, self.pool = lengths, batch_size, seed, shuffle, pool
        self.rank, self.world_size, self.name = rank, world_size, name
        self.epoch = 0

    @property
    def sampler(self) -> "LengthGroupedSampler":
        """Lightning calls ``set_epoch`` on ``batch_sampler.sampler``, never on the batch sampler itself."""
        return self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def num_batches(self) -> int:
        """Batches of the whole plan (all ranks, before padding)."""
        return math.ceil(len(self.lengths) / self.batch_size)

    def __len__(self) -> int:
        return math.ceil(self.num_batches() / self.world_size)

    def plan(self) -> list[list[int]]:
        """Every batch of this epoch, in order, for all ranks (identical on every rank)."""
        order = list(range(len(self.lengths)))
        rng = random.Random(self.seed + 1000003 * self.epoch)
        if self.shuffle:
            rng.shuffle(order)
            span = self.batch_size * self.pool
            chunks = [order[i:i + span] for i in range(0, len(order), span)]
            order = [i for chunk in chunks for i in sorted(chunk, key=lambda j: self.lengths[j])]
        else:
            order.sort(key=lambda j: self.lengths[j])
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.plan()
        if self.world_size > 1 and batches:
            padded = [batches[i % len(batches)] for i in range(len(self) * self.world_size)]
            batches = padded[self.rank::self.world_size]
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s batches of rank %d/%d, epoch %d (plan of %d): %s", self.name or "sampler", self.rank,
                      self.world_size, self.epoch, self.num_batches(), json.dumps(batches))
        return iter(batches)


def pad_batch(rows: list[Mapping[str, Any]], pad_id: int, is_regression: bool) -> dict[str, torch.Tensor]:
    """Dynamic padding to the longest row of the batch; returns input_ids, attention_mask, token_type_ids, labels."""
    ids, mask = pad_sequences([r["input_ids"] for r in rows], pad_id)
    types, _ = pad_sequences([() if r.get("token_type_ids") is None else r["token_type_ids"] for r in rows], 0,
                             min_width=ids.shape[1])
    labels = torch.tensor([r["label"] for r in rows], dtype=torch.float32 if is_regression else torch.long)
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "labels": labels}
    if "index" in rows[0]:
        batch["index"] = torch.tensor([r["index"] for r in rows], dtype=torch.long)
    return batch


class IndexedRows(torch.utils.data.Dataset):
    """A tokenized split whose rows carry their position (``index``): outputs gathered from several
    ranks are deduplicated and put in one order by it."""

    def __init__(self, rows: datasets.Dataset) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.rows[index], "index": index}

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        return [{**row, "index": i} for i, row in zip(indices, self.rows.__getitems__(indices))]
