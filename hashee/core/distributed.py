"""DDP helpers: which process is rank 0, and per-example outputs gathered from every rank.

Under ``trainer=ddp`` every rank runs the whole command. Each rank trains and validates on its share
of the batches (see :class:`hashee.data.batching.LengthGroupedSampler`); validation metrics are computed on the
outputs of all ranks (:func:`gather_examples`); only rank 0 evaluates and writes ``results.json``.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import torch.distributed as dist

# Set by the launchers that start one process per device: torchrun (RANK), Lightning's DDP
# launcher (LOCAL_RANK, NODE_RANK), SLURM (SLURM_PROCID).
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_rank_zero() -> bool:
    """Whether this process is rank 0: of the process group once initialized, else according to the
    launcher's environment; True when nothing is distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return all(os.environ.get(key, "0").strip() in ("", "0") for key in RANK_VARIABLES)


def all_gather_objects(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` in a single process)."""
    if not distributed():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def merge_rank_outputs(parts: Sequence[Sequence[torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """Merge ``(index, column, ...)`` tuples of several ranks: each example once, in index order.

    ``index`` holds the examples' positions in the split; every column has one row per example
    (first dimension). An example on several ranks (the sampler's padding repeats batches) is kept once.
    """
    index = torch.cat([part[0] for part in parts])
    columns = [torch.cat([part[k] for part in parts]) for k in range(1, len(parts[0]))]
    order = torch.argsort(index, stable=True)
    ordered = index[order]
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[1:] = ordered[1:] != ordered[:-1]
    keep = order[first]
    return tuple(column[keep] for column in columns)


def gather_examples(index: torch.Tensor, *columns: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-example CPU tensors of the whole split from every rank (see :func:`merge_rank_outputs`).

    Sorted by example index in a single process too, so that a metric is the same with any number of ranks."""
    local = (index.cpu(), *(c.cpu() for c in columns))
    return merge_rank_outputs(all_gather_objects(local))
