"""Generation and the attention kernel (issue 13): on one trained generation run (its best checkpoint), HashEE and
the same decoding steps without exits (the method's tokens replayed), each with attention by SDPA and by the kernel
the network now picks ("auto"), interleaved, fastest of REPEATS passes, in one process, at the run's threads.

    python gen_kernels.py RUN_DIR REPEATS > gen_kernels.json
"""

import json
import sys

import torch

from hashee.core.allocator import allocator_setting, keep_freed_memory
from hashee.experiments.generation import generate_split, load_finished_run, time_generation

run, repeats = sys.argv[1], int(sys.argv[2])
module, datamodule, cfg = load_finished_run(run)
torch.set_num_threads(int(cfg.eval.threads))
keep_freed_memory()
batches = datamodule.eval_batches("test")
test = generate_split(module, batches)
flops_speedup = test["flops_full"] / test["flops"]
best = {}
for _ in range(repeats):
    for kernel in ("sdpa", "auto"):
        module.net.attention_impl = kernel
        for name, exits, forced in (("method", True, None), ("replay", False, test["batch_tokens"])):
            seconds, _ = time_generation(module, batches, exits, 2, forced)
            best[f"{name}_{kernel}"] = min(seconds, best.get(f"{name}_{kernel}", seconds))
out = {"run": run, "threads": torch.get_num_threads(), "allocator": allocator_setting(), "repeats": repeats,
       "flops_speedup": flops_speedup, "generated_tokens": test["generated_tokens"], "seconds": best,
       "efficiency": {k: best[f"replay_{k}"] / best[f"method_{k}"] / flops_speedup for k in ("sdpa", "auto")}}
print(json.dumps(out, indent=1))
