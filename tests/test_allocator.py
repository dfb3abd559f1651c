"""keep_freed_memory: the encoder's buffers stop being page-faulted in again at every layer (Linux with glibc)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# The encoder at MiniLM's sizes (2 random layers), batch 32 x 25 tokens (SST-2's), 20 passes; prints the minor
# page faults of those passes and whether keep_freed_memory took effect.
PROBE = """
import resource, sys, torch
from hashee.core.allocator import allocator_setting, keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
from transformers import BertConfig, BertModel
from hashee.core.encoder import MultiExitEncoder
torch.manual_seed(0)
config = BertConfig(vocab_size=1000, hidden_size=384, num_hidden_layers=2, num_attention_heads=12, intermediate_size=1536)
encoder = MultiExitEncoder(BertModel(config).eval()).eval()
ids = torch.randint(5, 1000, (32, 25))
mask = torch.ones_like(ids)
with torch.inference_mode():
    for _ in range(3):
        encoder.forward_full(ids, mask)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        encoder.forward_full(ids, mask)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, kept, allocator_setting())
"""


def probe(mode: str) -> tuple[int, bool, str]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout.split()[-3:]
    return int(out[0]), out[1] == "True", out[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_kept_memory_is_not_faulted_in_again():
    default_faults, kept, setting = probe("default")
    assert not kept and setting == "default"
    assert default_faults >= 20 * 1000  # glibc gives the buffers back and faults them in again at every layer
    kept_faults, kept, setting = probe("keep")
    assert kept and setting == "keep_freed_memory"
    assert kept_faults * 10 < default_faults
