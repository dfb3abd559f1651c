"""The disk cache of built hashes: keyed by the caller's key, the settings and the build inputs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hashee.core.cache import DamagedCache, load_checked, torch_load, torch_save
from hashee.hashes.build import build_token_hash
from hashee.hashes.cluster import embedding_fingerprint
from hashee.hashes.functions import hash_function
from hashee.hashes.settings import HashSettings
from hashee.hashes.table import TokenHash


def cache_digest(settings: HashSettings, cache_key: dict[str, Any], build_kwargs: dict[str, Any]) -> str:
    """sha256 of the caller's key, the settings and the build inputs that are cheap to describe."""
    cost_model = build_kwargs.get("cost_model")
    embeddings = build_kwargs.get("word_embeddings")
    auto = {
        "vocab_size": build_kwargs.get("vocab_size"),
        "num_labels": build_kwargs.get("num_labels"),
        "is_regression": build_kwargs.get("is_regression"),
        "special_ids": sorted(build_kwargs.get("special_ids") or []),
        "num_train": len(build_kwargs.get("train_ids") or []),
        "cost_model": asdict(cost_model) if cost_model is not None else None,
        "embeddings": (embedding_fingerprint(embeddings)
                       if hash_function(settings.name).reads_embeddings and embeddings is not None else None),
    }
    payload = {"key": cache_key, "settings": asdict(settings), "auto": auto}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def load_or_build_token_hash(
    settings: HashSettings, cache_dir: str | Path, cache_key: dict[str, Any], **build_kwargs: Any
) -> tuple[TokenHash, bool]:
    """The cached hash for this key if present and sound, else build and cache it (a damaged one is set aside)."""
    digest = cache_digest(settings, cache_key, build_kwargs)
    path = Path(cache_dir) / f"hash-{settings.name}-{digest[:20]}.pt"
    cached = load_checked(path, lambda p: load_token_hash(p, build_kwargs.get("vocab_size")))
    if cached is not None:
        return cached, True
    hash_ = build_token_hash(settings, **build_kwargs)
    torch_save(hash_.state_dict(), path)
    return hash_, False


def load_token_hash(path: Path, vocab_size: int | None) -> TokenHash:
    """A cached hash (tensors and plain data only); raises :class:`DamagedCache` if it does not fit the vocabulary."""
    hash_ = TokenHash.from_state_dict(torch_load(path))
    if vocab_size is not None and hash_.table.numel() != int(vocab_size) + 1:
        raise DamagedCache(f"table of {hash_.table.numel()} entries for a vocabulary of {vocab_size}")
    return hash_
