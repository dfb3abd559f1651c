"""Predictors of an instance's difficulty vector (docs/methods.md section 5).

A target is a 0/1 vector per instance (one entry per layer: "layer i's head is correct"; or one
entry: "humans found it difficult"). Every predictor outputs one logit per entry; a logit > 0
(probability > 0.5) predicts 1. Predictors:

- :class:`EncoderPredictor`: a fresh backbone fine-tuned with a multi-label head on the pooled
  [CLS] (binary cross-entropy);
- :class:`LayerUnits`: one linear unit per layer on that layer's frozen [CLS] hidden state of the
  trained multi-exit model (BERxiT's learn-to-exit unit, one per layer);
- :class:`BiLSTMPredictor`: a BiLSTM over the backbone's word embeddings (frozen by default);
- :func:`fit_predict_logistic`: logistic regression per layer on the mean word embedding;
- :func:`majority_predictions`: the per-layer majority class of the training targets.

Trivial predictors, against which the learned ones are judged (they always run): the majority class,
``length`` (logistic regression per layer on the number of tokens) and ``confidence`` (logistic
regression per layer on the multi-exit model's own top-1 probability at its last layer: what the full
model knows about an example after running it whole).

:func:`run_predictors` trains the configured ones of a model-defined-difficulty run.

Rows are tokenized examples (``input_ids``, ``token_type_ids``) as in ``TaskDataModule.encoded``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from sklearn.linear_model import LogisticRegression
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from hashee.core.backbone import Backbone, load_backbone
from hashee.core.encoder import MultiExitEncoder
from hashee.core.errors import ConfigError
from hashee.data.batching import LengthGroupedSampler, pad_batch

log = logging.getLogger(__name__)
Rows = Sequence[Mapping[str, Any]]
Batch = dict[str, torch.Tensor]
BASELINE = "majority"


@dataclass(frozen=True)
class FitSettings:
    """How one neural predictor is trained: epochs, learning rate, batch size, seed."""

    epochs: int
    lr: float
    batch_size: int = 32
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], seed: int) -> "FitSettings":
        return cls(int(cfg["epochs"]), float(cfg["lr"]), int(cfg.get("batch_size", 32)), seed)


# --------------------------------------------------------------------------- batches


def make_batch(rows: Rows, targets: np.ndarray, indices: Sequence[int], pad_id: int) -> Batch:
    """Padded batch of ``rows[indices]``; ``labels`` holds their float target vectors ``[B, K]``."""
    picked = [{**rows[i], "label": [float(v) for v in targets[i]]} for i in indices]
    return pad_batch(picked, pad_id, is_regression=True)


def length_sorted_chunks(rows: Rows, batch_size: int) -> list[list[int]]:
    """Row indices cut into batches of similar length (inference order; results are put back by index)."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


# --------------------------------------------------------------------------- models


class EncoderPredictor(nn.Module):
    """A (fresh) backbone with dropout and a linear multi-label head on the pooled vector (docs/methods.md 2a)."""

    def __init__(self, backbone: Backbone, outputs: int) -> None:
        super().__init__()
        self.encoder = MultiExitEncoder(backbone.model, pooling=backbone.pooling)
        self.dropout = nn.Dropout(backbone.model.config.hidden_dropout_prob)
        self.head = nn.Linear(self.encoder.hidden_size, outputs)

    def forward(self, batch: Batch) -> torch.Tensor:
        hidden = self.encoder.forward_full(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        return self.head(self.dropout(self.encoder.pool(hidden, batch["attention_mask"])))


class BiLSTMPredictor(nn.Module):
    """A one-layer BiLSTM over word embeddings; its last forward and backward states feed a linear head."""

    def __init__(self, word_vectors: torch.Tensor, hidden_size: int, outputs: int, trainable: bool = False) -> None:
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(word_vectors.clone(), freeze=not trainable)
        self.lstm = nn.LSTM(word_vectors.shape[1], hidden_size, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden_size, outputs)

    def forward(self, batch: Batch) -> torch.Tensor:
        lengths = batch["attention_mask"].sum(dim=1).cpu()
        packed = pack_padded_sequence(self.embedding(batch["input_ids"]), lengths, batch_first=True,
                                      enforce_sorted=False)
        _, (state, _) = self.lstm(packed)
        return self.head(torch.cat([state[-2], state[-1]], dim=-1))


class LayerUnits(nn.Module):
    """One linear unit per layer: logit_i = w_i . h_i + b_i on features ``[N, L, d]``."""

    def __init__(self, layers: int, hidden_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(layers, hidden_size))
        self.bias = nn.Parameter(torch.zeros(layers))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features * self.weight).sum(dim=-1) + self.bias


# --------------------------------------------------------------------------- training and inference


def bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over instances and entries (fp32)."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def fit_on_rows(model: nn.Module, rows: Rows, targets: np.ndarray, settings: FitSettings, pad_id: int) -> list[float]:
    """Train ``model(batch) -> logits [B, K]`` with AdamW and BCE on length-grouped batches; mean loss per epoch."""
    torch.manual_seed(settings.seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr)
    sampler = LengthGroupedSampler([len(r["input_ids"]) for r in rows], settings.batch_size, settings.seed)
    model.train()
    history = []
    for epoch in range(settings.epochs):
        sampler.set_epoch(epoch)
        total = 0.0
        for indices in sampler:
            batch = make_batch(rows, targets, indices, pad_id)
            loss = bce(model(batch), batch["labels"])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item() * len(indices)
        history.append(total / len(rows))
    return history


def predict_rows(model: nn.Module, rows: Rows, batch_size: int, pad_id: int) -> np.ndarray:
    """0/1 predictions ``[N, K]`` of ``model`` on ``rows`` (logit > 0), in row order."""
    model.eval()
    out: list[np.ndarray | None] = [None] * len(rows)
    dummy = np.zeros((len(rows), 1))
    with torch.no_grad():
        for indices in length_sorted_chunks(rows, batch_size):
            logits = model(make_batch(rows, dummy, indices, pad_id))
            for i, row_logits in zip(indices, logits):
                out[i] = (row_logits > 0).long().numpy()
    return np.stack(out) if rows else np.zeros((0, 0), dtype=np.int64)


def fit_layer_units(features: torch.Tensor, targets: np.ndarray, settings: FitSettings) -> tuple[LayerUnits, list[float]]:
    """Full-batch Adam on frozen per-layer features ``[N, L, d]``; returns the units and the loss per step."""
    torch.manual_seed(settings.seed)
    units = LayerUnits(features.shape[1], features.shape[2])
    optimizer = torch.optim.Adam(units.parameters(), lr=settings.lr)
    target = torch.as_tensor(targets, dtype=torch.float32)
    history = []
    for _ in range(settings.epochs):
        loss = bce(units(features), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return units, history


def predict_layer_units(units: LayerUnits, features: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return (units(features) > 0).long().numpy()


# --------------------------------------------------------------------------- non-neural predictors


def mean_embeddings(rows: Rows, word_vectors: torch.Tensor) -> np.ndarray:
    """Mean word embedding of each row's tokens (special tokens included), ``[N, d]``."""
    return np.stack([word_vectors[torch.as_tensor(r["input_ids"])].mean(dim=0).numpy() for r in rows])


def fit_predict_logistic(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, c: float = 1.0,
                         max_iter: int = 1000) -> np.ndarray:
    """One logistic regression per layer; a layer with one class in training predicts that class."""
    columns = []
    for layer in range(y_train.shape[1]):
        labels = y_train[:, layer]
        if len(np.unique(labels)) < 2:
            columns.append(np.full(len(x_test), int(labels[0]) if len(labels) else 1))
            continue
        model = LogisticRegression(C=c, max_iter=max_iter)
        columns.append(model.fit(x_train, labels).predict(x_test))
    return np.stack(columns, axis=1).astype(np.int64)


def standardized(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One scalar feature per row as ``[N, 1]`` columns, centred and scaled by the training rows' statistics."""
    train, test = np.asarray(train, dtype=float), np.asarray(test, dtype=float)
    scale = train.std() or 1.0
    return ((train - train.mean()) / scale)[:, None], ((test - train.mean()) / scale)[:, None]


def majority_predictions(y_train: np.ndarray, count: int) -> np.ndarray:
    """Each layer's majority class in ``y_train`` (a tie predicts 1, "correct"), repeated ``count`` times."""
    majority = (y_train.mean(axis=0) >= 0.5).astype(np.int64)
    return np.tile(majority, (count, 1))


# --------------------------------------------------------------------------- all predictors of one run


@dataclass
class PredictorData:
    """Part B, split for the predictors: tokenized rows, target vectors, the multi-exit model's frozen pooled
    features and its last layer's top-1 probability."""

    train_rows: Rows
    test_rows: Rows
    y_train: np.ndarray
    y_test: np.ndarray
    pooled_train: torch.Tensor
    pooled_test: torch.Tensor
    confidence_train: np.ndarray
    confidence_test: np.ndarray


def fit_and_predict(model: nn.Module, settings: FitSettings, data: PredictorData, pad_id: int) -> tuple[np.ndarray, list[float]]:
    """Train a row-reading predictor on predictor-train; its predictions on predictor-test and its losses."""
    loss = fit_on_rows(model, data.train_rows, data.y_train, settings, pad_id)
    return predict_rows(model, data.test_rows, settings.batch_size, pad_id), loss


@dataclass
class Inputs:
    """What every predictor may read: the experiment's config, the split data, the fresh backbone and its word
    vectors (taken before any fine-tuning), the number of layers, the padding id and the seed."""

    exp: Any
    data: PredictorData
    fresh: Any
    word_vectors: torch.Tensor
    layers: int
    pad_id: int
    seed: int


Prediction = tuple[np.ndarray, list[float]]  # 0/1 predictions on predictor-test, training losses


def predict_encoder(i: Inputs) -> Prediction:
    """The backbone itself, fine-tuned to predict each layer's correctness."""
    return fit_and_predict(EncoderPredictor(i.fresh, i.layers), FitSettings.from_config(i.exp.encoder, i.seed),
                           i.data, i.pad_id)


def predict_bilstm(i: Inputs) -> Prediction:
    """A BiLSTM over the word vectors."""
    model = BiLSTMPredictor(i.word_vectors, int(i.exp.bilstm.hidden_size), i.layers,
                            bool(i.exp.bilstm.trainable_embeddings))
    return fit_and_predict(model, FitSettings.from_config(i.exp.bilstm, i.seed), i.data, i.pad_id)


def predict_layer_linear(i: Inputs) -> Prediction:
    """A linear unit per layer on the frozen pooled features."""
    units, loss = fit_layer_units(i.data.pooled_train, i.data.y_train, FitSettings.from_config(i.exp.layer_linear, i.seed))
    return predict_layer_units(units, i.data.pooled_test), loss


def predict_mean_embedding_linear(i: Inputs) -> Prediction:
    """Logistic regression on the mean word vector."""
    return fit_predict_logistic(mean_embeddings(i.data.train_rows, i.word_vectors), i.data.y_train,
                                mean_embeddings(i.data.test_rows, i.word_vectors), c=float(i.exp.logistic.C),
                                max_iter=int(i.exp.logistic.max_iter)), []


def predict_length(i: Inputs) -> Prediction:
    """Trivial: logistic regression per layer on the number of tokens."""
    lengths = [np.array([len(r["input_ids"]) for r in rows]) for rows in (i.data.train_rows, i.data.test_rows)]
    train, test = standardized(*lengths)
    return fit_predict_logistic(train, i.data.y_train, test), []


def predict_confidence(i: Inputs) -> Prediction:
    """Trivial: logistic regression per layer on the full model's own top-1 probability."""
    train, test = standardized(i.data.confidence_train, i.data.confidence_test)
    return fit_predict_logistic(train, i.data.y_train, test), []


def predict_majority(i: Inputs) -> Prediction:
    """Trivial: each layer's majority class."""
    return majority_predictions(i.data.y_train, len(i.data.y_test)), []


PREDICT: dict[str, Callable[[Inputs], Prediction]] = {
    "encoder": predict_encoder, "layer_linear": predict_layer_linear, "bilstm": predict_bilstm,
    "mean_embedding_linear": predict_mean_embedding_linear,
}
PREDICT_TRIVIAL: dict[str, Callable[[Inputs], Prediction]] = {
    BASELINE: predict_majority, "length": predict_length, "confidence": predict_confidence,
}


def run_predictors(cfg: DictConfig, data: PredictorData, pad_id: int) -> dict[str, dict[str, Any]]:
    """Train every configured predictor and the trivial ones; 0/1 predictions on predictor-test and losses."""
    exp, seed = cfg.experiment, int(cfg.experiment.seed)
    unknown = set(exp.predictors) - set(PREDICT)
    if unknown:
        raise ConfigError(f"experiment.predictors: unknown {sorted(unknown)} (known: {', '.join(PREDICT)})")
    fresh = load_backbone(cfg.backbone)  # a fresh copy: its word embeddings are taken before any fine-tuning
    word_vectors = fresh.model.get_input_embeddings().weight.detach().clone()
    inputs = Inputs(exp, data, fresh, word_vectors, data.y_train.shape[1], pad_id, seed)
    out: dict[str, dict[str, Any]] = {}
    for name in exp.predictors:
        torch.manual_seed(seed)
        log.info("difficulty: training predictor %s", name)
        pred, loss = PREDICT[name](inputs)
        out[name] = {"pred": pred, "train_loss": loss}
    for name, predict in PREDICT_TRIVIAL.items():
        pred, loss = predict(inputs)
        out[name] = {"pred": pred, "train_loss": loss}
    return out
