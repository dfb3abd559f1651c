"""The one padding implementation: ragged token-id rows to a padded ``[N, width]`` tensor and its mask.

Every batch (classification and seq2seq data modules, the difficulty predictors), the hashes'
calibration sample and the generation hash's speed-up sample pad with it.
"""

from __future__ import annotations

from typing import Sequence

import torch


def pad_sequences(rows: Sequence[Sequence[int]], value: int = 0, min_width: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)``: int64 ``[N, width]`` rows padded with ``value`` to the longest row (at least ``min_width``),
    and the 0/1 mask of the real entries."""
    width = max([min_width, *(len(row) for row in rows)])
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask
