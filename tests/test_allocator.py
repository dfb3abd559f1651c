"""keep_freed_memory: freed activation-sized buffers stop being page-faulted in again (Linux with glibc)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# One MiniLM-sized layer at batch 32 (800 tokens: a 4.9 MB FFN intermediate, 1.2 MB states), 50 times; prints
# the minor page faults of those 50 layers and whether keep_freed_memory took effect.
PROBE = """
import resource, sys, torch
from hashee.core.allocator import allocator_setting, keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
up, down = torch.ones(384, 1536), torch.ones(1536, 384)
def layer(x):
    return torch.nn.functional.gelu(x @ up) @ down + x
x = torch.zeros(800, 384)
for _ in range(3):
    x = layer(x) * 0
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    x = layer(x) * 0
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, kept, allocator_setting())
"""


def probe(mode: str) -> tuple[int, bool, str]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), out[1] == "True", out[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_kept_memory_is_not_faulted_in_again():
    default_faults, kept, setting = probe("default")
    assert not kept and setting == "default"
    assert default_faults >= 50 * 200  # glibc gives the buffers back and faults them in again at every layer
    kept_faults, kept, setting = probe("keep")
    assert kept and setting == "keep_freed_memory"
    assert kept_faults * 10 < default_faults
