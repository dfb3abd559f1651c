"""The attention kernels alone (issue 13): SDPA against the two batched products of hashee.core.attention, on grids
shaped as the encoder makes them (views of one Q/K/V projection, 12 heads of 32, a key mask), 2 threads, freed
memory kept, fastest of 7 rounds.

    python attn_kernels.py > attn_kernels.json
"""

import json

import torch
import torch.nn.functional as F

from hashee.core.allocator import keep_freed_memory
from hashee.core.attention import bmm_attention
from hashee.core.cost import fastest_call

torch.set_num_threads(2)
keep_freed_memory()
# (rows, queries, keys): SST-2's batches at 2x and 3x, MRPC's, long inputs
SHAPES = ((32, 25, 25), (32, 18, 25), (32, 10, 25), (32, 54, 54), (32, 90, 90), (32, 128, 128), (8, 256, 256),
          (8, 512, 512))


def milliseconds(fn, calls: int) -> float:
    return fastest_call(fn, calls, rounds=7, warmup=3) * 1e3


rows_out = []
with torch.inference_mode():
    for rows, q, m in SHAPES:
        projected = torch.randn(rows * m, 3 * 384).view(rows, m, 3, 12, 32).permute(2, 0, 3, 1, 4)
        query, key, value = projected.unbind(0)
        query = query[:, :, :q]
        mask = torch.ones(rows, 1, 1, m, dtype=torch.bool)
        mask[::2, :, :, -2:] = False
        calls = max(3, 3000 // (rows * m))
        sdpa = milliseconds(lambda: F.scaled_dot_product_attention(query, key, value, attn_mask=mask), calls)
        bmm = milliseconds(lambda: bmm_attention(query, key, value, mask), calls)
        rows_out.append({"rows": rows, "queries": q, "keys": m, "sdpa_ms": sdpa, "bmm_ms": bmm, "bmm_over_sdpa": bmm / sdpa})
print(json.dumps({"threads": torch.get_num_threads(), "rows": rows_out}, indent=1))
