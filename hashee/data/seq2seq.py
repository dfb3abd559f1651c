"""The data module of generation tasks: tokenized (cached) source/target pairs in length-grouped batches.

Decoder layout (every encoder-decoder): ``labels`` are the target tokens without a leading start
token, ``decoder_input_ids = [start] + labels[:-1]``; padding of labels is -100 (ignored).
"""

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

from hashee.core.padding import pad_sequences
from hashee.data.batching import LengthGroupedSampler
from hashee.tasks.generation import GenerationSpec, Pairs, load_generation_splits

SPLITS = ("train", "val", "test")
IGNORE_INDEX = -100


def target_layout(target_ids: list[int], start_id: int) -> tuple[list[int], list[int]]:
    """``(decoder_input_ids, labels)`` of one tokenized target (see the module docstring)."""
    labels = target_ids[1:] if target_ids and target_ids[0] == start_id else list(target_ids)
    return [start_id] + labels[:-1], labels


def pad_pairs(rows: list[Mapping[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad sources, decoder inputs (pad id) and labels (-100) to the longest row of the batch."""
    input_ids, attention_mask = pad_sequences([r["input_ids"] for r in rows], pad_id)
    decoder_input_ids, decoder_mask = pad_sequences([r["decoder_input_ids"] for r in rows], pad_id)
    labels, _ = pad_sequences([r["labels"] for r in rows], IGNORE_INDEX)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids,
            "decoder_attention_mask": decoder_mask, "labels": labels,
            "index": torch.tensor([r["index"] for r in rows], dtype=torch.long)}


class Seq2SeqDataModule(pl.LightningDataModule):
    """Tokenized (cached) source/target pairs of a generation task, served in length-grouped batches."""

    def __init__(self, spec: GenerationSpec, data_cfg: Any, tokenizer: PreTrainedTokenizerBase, tokenizer_name: str,
                 start_id: int, pad_id: int, max_source_length: int, max_target_length: int, batch_size: int = 16,
                 eval_batch_size: int = 32, seed: int = 0, cache_dir: str | None = None) -> None:
        """``tokenizer_name`` (where the tokenizer came from) keys the cache; ``start_id`` begins every decoder input."""
        super().__init__()
        self.spec, self.data_cfg, self.tokenizer = spec, data_cfg, tokenizer
        self.tokenizer_name, self.start_id, self.pad_id = tokenizer_name, start_id, pad_id
        self.max_source_length, self.max_target_length = max_source_length, max_target_length
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.pairs: dict[str, Pairs] = {}
        self.encoded: dict[str, datasets.Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.encoded:
            return
        self.pairs = load_generation_splits(self.spec, self.data_cfg)
        for split in SPLITS:
            self.encoded[split] = self._tokenize(self.pairs[split], split)

    def _tokenize(self, pairs: Pairs, split: str) -> datasets.Dataset:
        dataset = datasets.Dataset.from_dict({"source": pairs.sources, "target": pairs.targets,
                                              "index": list(range(len(pairs.targets)))})
        start = self.start_id

        def encode(batch: dict[str, list]) -> dict[str, list]:
            sources = self.tokenizer(batch["source"], truncation=True, max_length=self.max_source_length)["input_ids"]
            targets = self.tokenizer(batch["target"], truncation=True, max_length=self.max_target_length)["input_ids"]
            layouts = [target_layout(ids, start) for ids in targets]
            return {"input_ids": sources, "decoder_input_ids": [d for d, _ in layouts], "labels": [l for _, l in layouts]}

        cache = self._cache_file(dataset, split)
        return dataset.map(encode, batched=True, remove_columns=["source", "target"], cache_file_name=cache,
                           load_from_cache_file=cache is not None, desc=f"tokenize {split}")

    def _cache_file(self, dataset: datasets.Dataset, split: str) -> str | None:
        if self.cache_dir is None:
            return None
        key = json.dumps([self.spec.name, split, dataset._fingerprint, self.tokenizer_name, self.max_source_length,
                          self.max_target_length, self.start_id])
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return str(self.cache_dir / f"s2s-{self.spec.name}-{split}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.arrow")

    # -- what hashes and loaders read ------------------------------------------------------
    def token_ids(self, split: str = "train", side: str = "source") -> list[list[int]]:
        """Source token ids, or decoder input ids (``side="target"``), of every example of a split."""
        return list(self.encoded[split]["input_ids" if side == "source" else "decoder_input_ids"])

    def references(self, split: str) -> list[str]:
        return self.pairs[split].targets

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        lengths = [len(ids) for ids in self.encoded[split]["input_ids"]]
        sampler = LengthGroupedSampler(lengths, batch_size, self.seed, shuffle=shuffle)
        pad = self.pad_id
        return DataLoader(self.encoded[split], batch_sampler=sampler, collate_fn=lambda rows: pad_pairs(rows, pad))

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def eval_batches(self, split: str, batch_size: int | None = None) -> list[dict[str, torch.Tensor]]:
        return list(self._loader(split, batch_size or self.eval_batch_size, shuffle=False))
