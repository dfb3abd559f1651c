"""The data module of classification and regression tasks: tokenize once (cached), batch by length, pad per batch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import datasets
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from hashee.core.cache import DamagedCache, load_checked
from hashee.data.batching import IndexedRows, LengthGroupedSampler, pad_batch
from hashee.tasks.load import TaskData, load_task_data
from hashee.tasks.spec import TaskSpec

SPLITS = ("train", "val", "test")


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
