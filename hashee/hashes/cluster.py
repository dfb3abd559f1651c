"""The cluster hash's pieces: k-means (scikit-learn) over the backbone's word embeddings, clusters ranked by the
sum of their members' L2 norms (shallow to deep)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hashee.core.errors import ConfigError
from hashee.hashes.tokens import TrainTokens


def kmeans(points: torch.Tensor, k: int, iters: int, seed: int) -> torch.Tensor:
    """scikit-learn's k-means (k-means++ init, at most ``iters`` Lloyd iterations, one run seeded with ``seed``);
    returns the cluster id of every row."""
    from sklearn.cluster import KMeans

    data = points.detach().to(torch.float32).cpu().numpy()
    model = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=iters, random_state=seed, algorithm="lloyd")
    return torch.from_numpy(model.fit_predict(data).astype(np.int64))


def embedding_fingerprint(embeddings: torch.Tensor) -> dict[str, Any]:
    """Sum, Frobenius norm and shape of the matrix: lets a caller check which weights were used."""
    e = embeddings.detach().to(torch.float64)
    return {"shape": list(e.shape), "sum": float(e.sum()), "norm": float(e.norm())}


def cluster_ranks(embeddings: torch.Tensor, k: int, iters: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster rank (0 = smallest sum of member L2 norms) and L2 norm of every row."""
    assign = kmeans(embeddings, k, iters, seed)
    norms = embeddings.detach().to(torch.float64).norm(dim=1)
    norm_sums = torch.zeros(k, dtype=torch.float64).index_add_(0, assign, norms)
    rank_of_cluster = torch.empty(k, dtype=torch.int64)
    rank_of_cluster[torch.sort(norm_sums, stable=True).indices] = torch.arange(k)
    return rank_of_cluster[assign], norms


def cluster_ordering(tokens: TrainTokens, ranks: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """Hashed types by cluster rank, then embedding norm (both ascending)."""
    types = tokens.hashed_types
    by_norm = types[torch.sort(norms[types], stable=True).indices]
    return by_norm[torch.sort(ranks[by_norm], stable=True).indices]


def check_embeddings(embeddings: torch.Tensor | None, vocab_size: int, k: int) -> torch.Tensor:
    """The first ``vocab_size`` rows of the word-embedding matrix, or a ConfigError."""
    if embeddings is None:
        raise ConfigError("hash.name=cluster needs the backbone's word embeddings (got None)")
    if embeddings.dim() != 2 or embeddings.shape[0] < vocab_size:
        raise ConfigError(f"word embeddings of shape {tuple(embeddings.shape)} do not cover vocab size {vocab_size}")
    if vocab_size < k:
        raise ConfigError(f"cannot form {k} clusters from {vocab_size} embeddings")
    return embeddings.detach().cpu()[:vocab_size]
