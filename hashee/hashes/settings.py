"""The configuration of one hash: which function, its seed and knobs, and how its ordering becomes exit layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

BALANCES = ("types", "mass")


@dataclass
class HashSettings:
    """One hash function and how its ordering becomes exit layers."""

    name: str  # a key of hashee.hashes.functions.HASH_FUNCTIONS: random | random_per_occurrence | frequency | mi | cluster
    seed: int = 0
    balance: str = "types"  # types | mass   (frequency, mi)
    mi_bins: int = 5  # quantile bins of a regression target (mi)
    kmeans_iters: int = 50  # Lloyd iterations (cluster)
    num_buckets: int | None = None  # None -> depth
    depth: int | None = None  # None -> backbone depth L
    target_speedup: float | None = None  # None -> paper mode
    attend_exited: bool = True  # exited tokens stay keys/values (False: drop ablation)

    @classmethod
    def from_config(cls, hash_cfg: Mapping[str, Any], knobs: Mapping[str, Any], attend_exited: bool = True) -> "HashSettings":
        """From the ``hash`` config group and the ``hashee`` knobs (``depth``, ``num_buckets``, ``target_speedup``)."""
        target = knobs.get("target_speedup")
        return cls(name=str(hash_cfg["name"]), seed=int(hash_cfg.get("seed", 0)), balance=str(hash_cfg.get("balance", "types")),
                   mi_bins=int(hash_cfg.get("mi_bins", 5)), kmeans_iters=int(hash_cfg.get("kmeans_iters", 50)),
                   num_buckets=knobs.get("num_buckets"), depth=knobs.get("depth"),
                   target_speedup=None if target is None else float(target), attend_exited=attend_exited)
