"""Throughput of one MiniLM matrix product against its number of rows (tokens), 2 threads, fastest of 5 rounds:
the FFN (384 -> 1536, 1536 -> 384), the fused Q/K/V (384 -> 1152) and one projection (384 -> 384).

    python gemm_rows.py > gemm_rows.json
"""

import json

import torch
import torch.nn.functional as F

from hashee.core.allocator import keep_freed_memory
from hashee.core.cost import fastest_call

torch.set_num_threads(2)
keep_freed_memory()
ROWS = (25, 50, 100, 200, 300, 400, 600, 800, 1600)
SHAPES = ((384, 1536), (1536, 384), (384, 1152), (384, 384))


def seconds(fn, calls: int) -> float:
    return fastest_call(fn, calls, rounds=5, warmup=3)


out = {"threads": torch.get_num_threads(), "gflops": {}}
with torch.inference_mode():
    for k, n in SHAPES:
        weight, bias = torch.randn(n, k), torch.randn(n)
        row = {}
        for m in ROWS:
            x = torch.randn(m, k)
            row[m] = 2 * m * k * n / seconds(lambda: F.linear(x, weight, bias), max(20, 8000 // m)) / 1e9
        out["gflops"][f"{k}x{n}"] = row
print(json.dumps(out, indent=1))
