"""Learnability of instance difficulty (METHODS.md section 5): ``experiment=difficulty_model|difficulty_human``.

Model-defined difficulty (:func:`run_difficulty_model`):
1. the pool is the task's whole training split (train + the val carved from it; the test split is
   never touched); it is split, seeded and stratified, into part A and a disjoint part B;
2. a multi-exit model (``experiment.multi_exit_method``, built through Hydra: ``hashee`` never imports
   ``baselines``) trains on A, its checkpoint selected on a validation carved out of A;
3. on B, each instance gets a 0/1 vector over layers: "layer i's head predicts correctly";
4. B is split into predictor-train / predictor-test; the predictors of
   :mod:`hashee.difficulty_predictors` and the per-layer majority baseline learn the vector on the
   first and are scored per layer on the second (label 0 = "incorrect" is the positive class).

Human-defined difficulty (:func:`run_difficulty_human`): SNLI pairs without an annotator majority
(gold label ``-1`` on the hub, ``-`` in the original files) are difficult; all of them plus as many
seeded simple pairs form a balanced set on which a binary encoder classifier is fine-tuned.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import datasets
import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from hashee import difficulty_predictors as P
from hashee.backbone import load_backbone
from hashee.difficulty_predictors import BASELINE, PredictorData, run_predictors
from hashee.data import TaskDataModule
from hashee.errors import ConfigError, DataError
from hashee.logging_utils import make_logger
from hashee.results import package_versions, write_results
from hashee.run import build_data, train
from hashee.sweep import config_fingerprint
from hashee.tasks import TaskSpec, split_indices

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- metrics


def binary_metrics(truth: np.ndarray, pred: np.ndarray, positive: int) -> dict[str, float | None]:
    """Accuracy, F1 of the ``positive`` class, TPR, TNR and sqrt(TPR * TNR); an undefined ratio is None."""
    truth, pred = np.asarray(truth).astype(int), np.asarray(pred).astype(int)
    actual, predicted = truth == positive, pred == positive
    tp, fp, fn = int((actual & predicted).sum()), int((~actual & predicted).sum()), int((actual & ~predicted).sum())
    tn = int((~actual & ~predicted).sum())
    tpr = tp / (tp + fn) if tp + fn else None
    tnr = tn / (tn + fp) if tn + fp else None
    return {"accuracy": (tp + tn) / len(truth) if len(truth) else None,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
            "tpr": tpr, "tnr": tnr,
            "gmean": math.sqrt(tpr * tnr) if tpr is not None and tnr is not None else None}


def layer_table(truth: np.ndarray, pred: np.ndarray) -> list[dict[str, Any]]:
    """Per-layer binary metrics of correctness vectors ``[N, L]``, "incorrect" (0) as the positive class."""
    rows = []
    for layer in range(truth.shape[1]):
        m = binary_metrics(truth[:, layer], pred[:, layer], positive=0)
        rows.append({"layer": layer + 1, "accuracy": m["accuracy"], "f1_incorrect": m["f1"], "tpr": m["tpr"],
                     "tnr": m["tnr"], "gmean": m["gmean"]})
    return rows


def mean_over_layers(table: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Mean of each metric over the layers where it is defined."""
    keys = [k for k in table[0] if k != "layer"]
    means = {}
    for key in keys:
        values = [row[key] for row in table if row[key] is not None]
        means[key] = float(np.mean(values)) if values else None
    return means


# --------------------------------------------------------------------------- splits and labels


def split_positions(labels: Sequence[int], indices: Sequence[int], size: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded, stratified ``(kept, held)`` split of ``indices`` (held: a fraction, or a count if >= 1)."""
    if len(indices) < 2:
        raise ConfigError(f"difficulty: a split of {len(indices)} example(s) cannot be divided; use a larger pool")
    keep, held = split_indices([labels[i] for i in indices], len(indices), size, seed)
    return [indices[i] for i in keep], [indices[i] for i in held]


def pool_splits(labels: Sequence[int], exp: Mapping[str, Any]) -> dict[str, list[int]]:
    """Disjoint pool indices: ``a_train`` + ``a_val`` (part A), ``predictor_train`` + ``predictor_test`` (part B)."""
    seed = int(exp["seed"])
    part_a, part_b = split_positions(labels, list(range(len(labels))), float(exp["pool_b_fraction"]), seed)
    a_train, a_val = split_positions(labels, part_a, float(exp["a_val_fraction"]), seed)
    b_train, b_test = split_positions(labels, part_b, float(exp["predictor_test_fraction"]), seed)
    return {"a_train": a_train, "a_val": a_val, "predictor_train": b_train, "predictor_test": b_test}


def correctness_vectors(layer_logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """``[N, L]`` 0/1: whether layer i's head (logits ``[L, N, C]``) predicts the gold label."""
    return (layer_logits.argmax(dim=-1) == labels[None, :]).T.long().numpy()


# --------------------------------------------------------------------------- the multi-exit model


def classification_spec(cfg: DictConfig) -> TaskSpec:
    """The task's spec; ConfigError for a regression task (no per-layer "correct")."""
    spec = TaskSpec.from_config(cfg.task)
    if spec.is_regression:
        raise ConfigError(f"experiment={cfg.experiment.name}: task {spec.name} is a regression task; "
                          "per-layer correctness needs a classification task")
    return spec


def datamodule_with(base: TaskDataModule, encoded: dict[str, datasets.Dataset]) -> TaskDataModule:
    """A data module like ``base`` that serves the given (already tokenized) splits."""
    module = TaskDataModule(base.spec, base.data_cfg, base.tokenizer, base.tokenizer_name,
                            batch_size=base.batch_size, eval_batch_size=base.eval_batch_size,
                            max_length=base.max_length, seed=base.seed)
    module.encoded = encoded
    return module


def layer_outputs(module: Any, rows: P.Rows, batch_size: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every layer's head logits ``[L, N, C]`` and pooled vector ``[N, L, d]`` (what the heads read: [CLS] or
    the mean of the real tokens, METHODS.md 2a) of a multi-exit model, in row order."""
    logits: list[Any] = [None] * len(rows)
    pooled: list[Any] = [None] * len(rows)
    module.eval()
    labels = np.zeros((len(rows), 1))
    with torch.no_grad():
        for indices in P.length_sorted_chunks(rows, batch_size):
            batch = P.make_batch(rows, labels, indices, pad_id)
            mask = batch["attention_mask"]
            states = module.hidden_states(batch)
            batch_logits = torch.stack([module.layer_head(i, h, mask).logits.float() for i, h in enumerate(states)], dim=1)
            batch_pooled = torch.stack([module.encoder.pooled_vector(h, mask).float() for h in states], dim=1)
            for j, i in enumerate(indices):
                logits[i], pooled[i] = batch_logits[j], batch_pooled[j]
    return torch.stack(logits).transpose(0, 1), torch.stack(pooled)


# --------------------------------------------------------------------------- scoring


def score_predictors(y_test: np.ndarray, predicted: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-layer table, mean over layers and mean accuracy gap to the majority baseline of each predictor."""
    scored = {}
    for name, item in predicted.items():
        table = layer_table(y_test, item["pred"])
        scored[name] = {"per_layer": table, "mean": mean_over_layers(table), "train_loss": item["train_loss"]}
    majority = scored[BASELINE]["mean"]["accuracy"]
    for item in scored.values():
        item["mean_accuracy_gap_vs_majority"] = item["mean"]["accuracy"] - majority
    return scored


# --------------------------------------------------------------------------- results, W&B, summary


def start_results(cfg: DictConfig, run_dir: Path, fingerprint: str | None) -> dict[str, Any]:
    """The common head of results.json, written with ``status: running``."""
    results = {"task": cfg.task.name, "method": str(cfg.experiment.name), "experiment": str(cfg.experiment.name),
               "seed": int(cfg.seed), "run_dir": str(run_dir),
               "config_fingerprint": fingerprint or config_fingerprint(cfg),
               "config": OmegaConf.to_container(cfg, resolve=True), "versions": package_versions()}
    write_results(run_dir, results, status="running")
    return results


def log_to_wandb(logger: Any | None, results: Mapping[str, Any]) -> None:
    """Per-layer tables, a line plot of predictor accuracy vs the majority baseline, summary scalars (never fatal)."""
    if logger is None:
        return
    try:
        import wandb

        run = logger.experiment
        scored = results.get("predictors", {})
        if scored:
            columns = ["predictor", *scored[BASELINE]["per_layer"][0]]
            rows = [[name, *row.values()] for name, item in scored.items() for row in item["per_layer"]]
            layers = [row["layer"] for row in scored[BASELINE]["per_layer"]]
            run.log({"difficulty/per_layer": wandb.Table(columns=columns, data=rows),
                     "difficulty/accuracy_vs_majority": wandb.plot.line_series(
                         xs=layers, ys=[[row["accuracy"] for row in item["per_layer"]] for item in scored.values()],
                         keys=list(scored), title="predictor accuracy vs majority, per layer", xname="layer")})
            run.summary.update({f"difficulty/{name}/{key}": value for name, item in scored.items()
                                for key, value in item["mean"].items() if value is not None})
        run.summary.update({"primary": results["primary"], **{f"human/{k}": v for k, v in results.get("metrics", {}).items()
                                                              if v is not None}})
        run.finish()
    except Exception as exc:  # noqa: BLE001 - W&B must never fail a run
        log.warning("W&B difficulty tables not logged: %s", exc)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_model_table(results: Mapping[str, Any], console: Console | None = None) -> None:
    """Mean over layers of each predictor's metrics, and the per-layer correct rate on predictor-test."""
    table = Table(title=f"{results['task']}: learnability of model-defined difficulty (mean over layers)")
    for column in ("predictor", "acc", "acc - maj", "F1 wrong", "TPR", "TNR", "gmean"):
        table.add_column(column, justify="left" if column == "predictor" else "right", no_wrap=True)
    for name, item in results["predictors"].items():
        mean = item["mean"]
        table.add_row(name, fmt(mean["accuracy"]), fmt(item["mean_accuracy_gap_vs_majority"]), fmt(mean["f1_incorrect"]),
                      fmt(mean["tpr"]), fmt(mean["tnr"]), fmt(mean["gmean"]))
    console = console or Console()
    console.print(table)
    rates = " ".join(f"{r:.2f}" for r in results["correct_rate"]["predictor_test"])
    console.print(f"per-layer correct rate on predictor-test: {rates}")
    console.print(f"results: {Path(results['run_dir']) / 'results.json'}")


# --------------------------------------------------------------------------- entry


def run_difficulty(cfg: DictConfig, run_dir: Path, fingerprint: str | None = None) -> dict[str, Any]:
    """Run ``cfg.experiment.name`` (``difficulty_model`` or ``difficulty_human``) and return its results."""
    runners = {"difficulty_model": run_difficulty_model, "difficulty_human": run_difficulty_human}
    name = str(cfg.experiment.name)
    if name not in runners:
        raise ConfigError(f"unknown experiment.name {name!r} (known: default, {', '.join(runners)})")
    if cfg.eval.threads:
        torch.set_num_threads(int(cfg.eval.threads))
    return runners[name](cfg, run_dir, fingerprint)


# --------------------------------------------------------------------------- experiment: model-defined difficulty


def run_difficulty_model(cfg: DictConfig, run_dir: Path, fingerprint: str | None = None) -> dict[str, Any]:
    """Train a multi-exit model on part A, label part B by per-layer correctness, score the predictors."""
    run_dir, exp = Path(run_dir), cfg.experiment
    spec = classification_spec(cfg)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    results = start_results(cfg, run_dir, fingerprint)

    backbone = load_backbone(cfg.backbone)
    base = build_data(cfg, spec, backbone.tokenizer, backbone.source)
    pool = datasets.concatenate_datasets([base.encoded["train"], base.encoded["val"]])
    labels = list(pool["label"])
    splits = pool_splits(labels, exp)
    part_b = splits["predictor_train"] + splits["predictor_test"]
    encoded = {"train": pool.select(splits["a_train"]), "val": pool.select(splits["a_val"]), "test": pool.select(part_b)}
    module = hydra.utils.instantiate(exp.multi_exit_method, spec=spec, backbone=backbone, optim=cfg.optim,
                                     _recursive_=False)
    logger = make_logger(cfg, run_dir, results["config"])
    results["multi_exit"] = {"method": str(exp.multi_exit_method.get("name", exp.multi_exit_method._target_)),
                             "train": train(cfg, module, datamodule_with(base, encoded), run_dir, logger)}

    pad_id = backbone.tokenizer.pad_token_id or 0
    rows = encoded["test"].to_list()
    logits, pooled = layer_outputs(module, rows, int(cfg.data.eval_batch_size), pad_id)
    correct = correctness_vectors(logits, torch.as_tensor([r["label"] for r in rows]))
    n_train = len(splits["predictor_train"])
    data = PredictorData(rows[:n_train], rows[n_train:], correct[:n_train], correct[n_train:], pooled[:n_train], pooled[n_train:])

    scored = score_predictors(data.y_test, run_predictors(cfg, data, pad_id))
    best = max((name for name in scored if name != BASELINE), key=lambda n: scored[n]["mean_accuracy_gap_vs_majority"],
               default=BASELINE)
    results.update(
        splits={"pool": len(pool), **{name: len(idx) for name, idx in splits.items()}, "part_b": len(part_b)},
        correct_rate={"part_b": correct.mean(axis=0).tolist(), "predictor_train": data.y_train.mean(axis=0).tolist(),
                      "predictor_test": data.y_test.mean(axis=0).tolist()},
        predictors=scored,
        primary_metric="mean_accuracy_gap_vs_majority", primary_predictor=best,
        primary=scored[best]["mean_accuracy_gap_vs_majority"],
    )
    write_results(run_dir, results, status="complete")
    log_to_wandb(logger, results)
    print_model_table(results)
    return results


# --------------------------------------------------------------------------- experiment: human-defined difficulty


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
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    results = start_results(cfg, run_dir, fingerprint)
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
    write_results(run_dir, results, status="complete")
    log_to_wandb(logger, results)
    print_human_table(results)
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
