"""Learnability of human-defined difficulty (docs/methods.md section 5): ``experiment=difficulty_human``.

SNLI pairs without an annotator majority (gold label ``-1`` on the hub, ``-`` in the original files) are
difficult; all of them plus as many seeded simple pairs form a balanced set on which a binary encoder
classifier is fine-tuned.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import datasets
import numpy as np
import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from hashee.core.backbone import load_backbone
from hashee.core.errors import ConfigError, DataError
from hashee.experiments.difficulty import predictors as P
from hashee.experiments.difficulty.scoring import binary_metrics, fmt, log_to_wandb, split_positions
from hashee.experiments.steps import finish_run, start_run
from hashee.runs.logger import make_logger


@dataclass
class Pairs:
    """Texts and a difficult (1) / simple (0) flag per example; ``origin`` names where they came from."""

    origin: str
    texts: list[list[str]]  # one list per text column
    difficult: list[int]


def read_pairs_file(path: Path, text_columns: Sequence[str], label_column: str, difficult_labels: Sequence[str]) -> Pairs:
    """Read an SNLI-style TSV with a header (e.g. ``premise<TAB>hypothesis<TAB>label``, the ELUE/hub layout).

    A label in ``difficult_labels`` (``-1``, ``-``: no annotator majority) marks a difficult pair; any
    other label a simple one. Rows are never dropped.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise DataError(str(path), f"cannot read file: {exc.strerror or exc}") from exc
    records = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not records:
        raise DataError(str(path), "empty file")
    header = records[0]
    missing = [c for c in [*text_columns, label_column] if c not in header]
    if missing:
        raise DataError(str(path), f"missing column(s) {missing} (header: {', '.join(header)})", line=1)
    where = [header.index(c) for c in text_columns]
    label_at = header.index(label_column)
    hard = {str(v) for v in difficult_labels}
    pairs = Pairs(str(path), [[] for _ in text_columns], [])
    for line, fields in enumerate(records[1:], start=2):
        if len(fields) != len(header):
            raise DataError(str(path), f"malformed row: expected {len(header)} fields, found {len(fields)}", line=line)
        for column, index in zip(pairs.texts, where):
            column.append(fields[index])
        pairs.difficult.append(int(fields[label_at].strip() in hard))
    return pairs


def hub_pairs(exp: DictConfig, cache_dir: str | None) -> Pairs:
    """The pairs of ``experiment.hub`` (default ``stanfordnlp/snli``, label -1 = no majority); ConfigError offline."""
    origin = f"hf://{exp.hub.path}[{exp.hub.split}]"
    try:
        ds = datasets.load_dataset(str(exp.hub.path), split=str(exp.hub.split), cache_dir=cache_dir)
    except Exception as exc:  # offline or unknown: one clear line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(f"difficulty_human: {origin} could not be loaded ({first}); "
                          "set experiment.human_file=PATH to a local SNLI-style TSV") from exc
    hard = {str(v) for v in exp.difficult_labels}
    return Pairs(origin, [list(ds[c]) for c in exp.text_columns], [int(str(v) in hard) for v in ds[exp.label_column]])


def load_pairs(cfg: DictConfig) -> Pairs:
    """``experiment.human_file`` if set, else the task's local ELUE train file if ``data.elue_dir`` is set, else the hub."""
    exp = cfg.experiment
    if exp.human_file:
        path = Path(str(exp.human_file)).expanduser()
    elif cfg.data.elue_dir and cfg.task.get("source") == "elue":
        path = Path(str(cfg.data.elue_dir)).expanduser() / str(cfg.task.folder) / str(cfg.task.files.train)
    else:
        return hub_pairs(exp, str(Path(str(cfg.data.cache_dir)).expanduser()))
    return read_pairs_file(path, list(exp.text_columns), str(exp.label_column), list(exp.difficult_labels))


def balanced_indices(difficult: Sequence[int], seed: int) -> list[int]:
    """All difficult examples plus an equal seeded sample of simple ones (fewer if there are fewer), sorted."""
    hard = [i for i, d in enumerate(difficult) if d]
    simple = [i for i, d in enumerate(difficult) if not d]
    count = min(len(hard), len(simple))
    rng = np.random.RandomState(seed)
    pick = lambda items: [items[i] for i in rng.permutation(len(items))[:count]]  # noqa: E731
    return sorted(pick(hard) + pick(simple))


def tokenize_pairs(tokenizer: Any, pairs: Pairs, indices: Sequence[int], max_length: int) -> list[dict[str, Any]]:
    """Tokenized rows (``input_ids``, ``token_type_ids``) of the chosen examples."""
    texts = [[column[i] for i in indices] for column in pairs.texts]
    encoded = tokenizer(*texts, truncation=True, max_length=max_length)
    types = encoded.get("token_type_ids") or [None] * len(indices)
    return [{"input_ids": ids, "token_type_ids": t} for ids, t in zip(encoded["input_ids"], types)]


def run_difficulty_human(cfg: DictConfig, run_dir: Path, fingerprint: str | None = None) -> dict[str, Any]:
    """Fine-tune a binary encoder classifier to tell difficult (no annotator majority) from simple pairs."""
    run_dir, exp, seed = Path(run_dir), cfg.experiment, int(cfg.experiment.seed)
    results = start_run(cfg, run_dir, fingerprint, experiment=str(cfg.experiment.name))
    pairs = load_pairs(cfg)
    chosen = balanced_indices(pairs.difficult, seed)
    if not chosen:
        raise ConfigError(f"difficulty_human: {pairs.origin} has no difficult rows (labels {list(exp.difficult_labels)}) "
                          "or no simple ones; local ELUE copies drop them: use the original SNLI file or the hub")
    flags = [pairs.difficult[i] for i in chosen]
    train_pos, test_pos = split_positions(flags, list(range(len(chosen))), float(exp.test_fraction), seed)

    backbone = load_backbone(cfg.backbone)
    pad_id = backbone.tokenizer.pad_token_id or 0
    rows = tokenize_pairs(backbone.tokenizer, pairs, chosen, int(cfg.data.max_length))
    targets = np.asarray(flags)[:, None]
    settings = P.FitSettings.from_config(exp.encoder, seed)
    torch.manual_seed(seed)
    model = P.EncoderPredictor(backbone, 1)
    loss = P.fit_on_rows(model, [rows[i] for i in train_pos], targets[train_pos], settings, pad_id)
    pred = P.predict_rows(model, [rows[i] for i in test_pos], settings.batch_size, pad_id)[:, 0]
    metrics = binary_metrics(targets[test_pos, 0], pred, positive=1)
    metrics["f1_difficult"] = metrics.pop("f1")

    logger = make_logger(cfg, run_dir, results["config"])
    results.update(
        source=pairs.origin,
        splits={"rows": len(pairs.difficult), "difficult": int(sum(pairs.difficult)), "balanced": len(chosen),
                "train": len(train_pos), "test": len(test_pos),
                "test_difficult": int(targets[test_pos, 0].sum())},
        metrics=metrics, chance=0.5, accuracy_above_chance=metrics["accuracy"] - 0.5, train_loss=loss,
        primary_metric="accuracy", primary=metrics["accuracy"],
    )
    finish_run(run_dir, results, logger, log=log_to_wandb, show=print_human_table)
    return results


def print_human_table(results: Mapping[str, Any], console: Console | None = None) -> None:
    """Binary metrics of the difficult-vs-simple classifier on its balanced test split, and chance."""
    table = Table(title=f"human-defined difficulty ({results['source']}), balanced test of {results['splits']['test']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in {**results["metrics"], "chance": results["chance"]}.items():
        table.add_row(key, fmt(value))
    console = console or Console()
    console.print(table)
    console.print(f"results: {Path(results['run_dir']) / 'results.json'}")
