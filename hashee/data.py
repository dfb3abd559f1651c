"""One LightningDataModule for every task and method: tokenize once (cached), batch by length, pad per batch."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from pathlib import Path
from typing import Any, Iterator, Mapping

import datasets
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler
from transformers import PreTrainedTokenizerBase

from hashee.cache import DamagedCache, load_checked
from hashee.tasks import TaskData, TaskSpec, load_task_data

SPLITS = ("train", "val", "test")
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
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.as_tensor(row["input_ids"])
        mask[i, :n] = 1
        if row.get("token_type_ids") is not None:
            types[i, :n] = torch.as_tensor(row["token_type_ids"])
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


def load_tokenized(path: Path, num_rows: int) -> datasets.Dataset:
    """A cached tokenized split; raises :class:`DamagedCache` if it lacks columns or rows of its split."""
    loaded = datasets.Dataset.from_file(str(path))
    missing = {"input_ids", "label"} - set(loaded.column_names)
    if missing:
        raise DamagedCache(f"no column {', '.join(sorted(missing))}")
    if loaded.num_rows != num_rows:
        raise DamagedCache(f"{loaded.num_rows} rows for a split of {num_rows}")
    return loaded


class TaskDataModule(pl.LightningDataModule):
    """Loads a task's train/val/test splits, tokenizes them (cached on disk) and serves length-grouped batches."""

    def __init__(self, spec: TaskSpec, data_cfg: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase,
                 tokenizer_name: str, batch_size: int = 32, eval_batch_size: int = 32, max_length: int = 128,
                 seed: int = 0, cache_dir: str | None = None) -> None:
        super().__init__()
        self.spec, self.data_cfg, self.tokenizer, self.tokenizer_name = spec, data_cfg, tokenizer, tokenizer_name
        self.batch_size, self.eval_batch_size, self.max_length, self.seed = batch_size, eval_batch_size, max_length, seed
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.task_data: TaskData | None = None
        self.encoded: dict[str, datasets.Dataset] = {}

    # -- preparation -----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Load and tokenize every split once (idempotent)."""
        if self.encoded:
            return
        self.task_data = load_task_data(self.spec, self.data_cfg)
        for split in SPLITS:
            self.encoded[split] = self._tokenize(getattr(self.task_data, split), split)

    def _cache_file(self, dataset: datasets.Dataset, split: str) -> str | None:
        """A cache path keyed by the split's content fingerprint, the tokenizer and max_length."""
        if self.cache_dir is None:
            return None
        key = json.dumps([self.spec.name, split, dataset._fingerprint, self.tokenizer_name, self.max_length])
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return str(self.cache_dir / f"tok-{self.spec.name}-{split}-{digest}.arrow")

    def _tokenize(self, dataset: datasets.Dataset, split: str) -> datasets.Dataset:
        pair = self.spec.is_pair

        def encode(batch: dict[str, list]) -> dict[str, list]:
            args = (batch["text_a"], batch["text_b"]) if pair else (batch["text_a"],)
            out = self.tokenizer(*args, truncation=True, max_length=self.max_length)
            return {"input_ids": out["input_ids"], "token_type_ids": out.get("token_type_ids", [None] * len(out["input_ids"]))}

        keep = ["label"]
        drop = [c for c in dataset.column_names if c not in keep]
        cache = self._cache_file(dataset, split)
        if cache is not None:  # a damaged cached split is set aside here, and map() tokenizes afresh
            load_checked(Path(cache), lambda path: load_tokenized(path, dataset.num_rows))
        # the cache key is the result's fingerprint (datasets cannot hash ``encode`` and would draw a random
        # one): what is keyed by it, e.g. the hash cache, is then found again by the next run
        return dataset.map(encode, batched=True, remove_columns=drop, cache_file_name=cache,
                           load_from_cache_file=cache is not None, desc=f"tokenize {split}",
                           new_fingerprint=Path(cache).stem.rsplit("-", 1)[-1] if cache else None)

    # -- loaders ---------------------------------------------------------------------------
    def lengths(self, split: str) -> list[int]:
        return [len(ids) for ids in self.encoded[split]["input_ids"]]

    def token_ids(self, split: str = "train") -> list[list[int]]:
        """Token ids (with [CLS]/[SEP], no padding) of every example of a split: what hashes are built from."""
        return list(self.encoded[split]["input_ids"])

    def labels(self, split: str = "train") -> list[float]:
        return list(self.encoded[split]["label"])

    def _loader(self, split: str, batch_size: int, shuffle: bool, sharded: bool = False) -> DataLoader:
        """Length-grouped batches of a split; ``sharded``: only this rank's share (see the sampler)."""
        rank, world_size = self.rank_and_world_size() if sharded else (0, 1)
        sampler = LengthGroupedSampler(self.lengths(split), batch_size, self.seed, shuffle=shuffle, rank=rank,
                                       world_size=world_size, name=split)
        pad_id = self.tokenizer.pad_token_id or 0
        regression = self.spec.is_regression
        return DataLoader(IndexedRows(self.encoded[split]), batch_sampler=sampler,
                          collate_fn=lambda rows: pad_batch(rows, pad_id, regression))

    def rank_and_world_size(self) -> tuple[int, int]:
        """(global rank, world size) of the Trainer this module is attached to; (0, 1) without one."""
        trainer = getattr(self, "trainer", None)
        return (int(trainer.global_rank), int(trainer.world_size)) if trainer is not None else (0, 1)

    # The Trainer's loaders are sharded over DDP ranks (trainer.use_distributed_sampler must be false:
    # Lightning cannot inject its sampler into this batch sampler); ``eval_batches`` is never sharded.
    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True, sharded=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False, sharded=True)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False, sharded=True)

    def eval_batches(self, split: str, batch_size: int | None = None) -> list[dict[str, torch.Tensor]]:
        """Every batch of an evaluation split, materialized (used for timing and curves).

        Examples come in the same (length-sorted) order whatever the batch size."""
        return list(self._loader(split, batch_size or self.eval_batch_size, shuffle=False))
