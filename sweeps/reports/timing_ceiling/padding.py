"""How much HashEE's attention grids are padded (BENCHMARKS.md section 0b): over SST-2 dev in the harness's batches
of 32, the score slots the encoder's per-layer plans compute (rows x widest query count x keys) against the slots
the real queries need (queries x keys), at 1.5x, 2x and 3x.

    python padding.py > padding_sst2.json
"""

import json

import torch

from ceiling import TARGETS, load
from hashee.core.encoder import exit_masks, plan_layers

modules, batches = load("sst2", 32)
out = {}
with torch.inference_mode():
    for target in TARGETS:
        module, computed, needed = modules[target], 0, 0
        for batch in batches:
            real = batch["attention_mask"].bool()
            for plan in plan_layers(exit_masks(real, module.exit_layers(batch), module.depth), real, module.attend_exited):
                computed += plan.rows * plan.q_max * plan.kv_max
                needed += plan.q_flat.numel() * plan.kv_max
        out[target] = {"score_slots_computed": computed, "score_slots_of_real_queries": needed,
                       "padding_factor": computed / needed}
print(json.dumps(out, indent=1))
