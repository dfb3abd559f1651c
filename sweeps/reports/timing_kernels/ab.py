"""Attention kernel A/B (issue 13), one process, interleaved, the harness's batches of the whole dev split.

    python ab.py TASK THREADS REPEATS [default|keep_freed_memory] > TASK.json

Times over the same batches: the stock transformers forward with its default SDPA attention (hf_sdpa) and with
eager attention (hf_eager, the explicit-matmul reference); this project's full model and HashEE at 1.5x/2x/3x
(frequency hash from 8,000 training examples, untrained heads) with attention by torch's SDPA (attention_impl
"sdpa", the encoder before this change) and by the kernel the encoder now picks ("auto": two batched products
on CPU for up to 128 keys). Per function: fastest of REPEATS passes, and the minor page faults of that pass.
"""

import copy
import json
import resource
import sys
import time

import torch
from hydra import compose, initialize_config_module

from hashee.core.allocator import allocator_setting, keep_freed_memory
from hashee.core.backbone import load_backbone
from hashee.experiments.steps import build_data, cache_dir, instantiate_method
from hashee.tasks.spec import TaskSpec

task, threads, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
if (sys.argv[4] if len(sys.argv) > 4 else "keep_freed_memory") == "keep_freed_memory":
    keep_freed_memory()
base = [f"task={task}", "data.glue_dir=/work/shared/data/glue", "data.train_limit=8000", "logger=none"]
with initialize_config_module(config_module="hashee_conf", version_base="1.3"):
    cfgs = {t: compose(config_name="config", overrides=[*base, "method=hashee", f"target_speedup={t}"])
            for t in ("1.5", "2", "3")}
cfg = cfgs["2"]
spec = TaskSpec.from_config(cfg.task)
backbone = load_backbone(cfg.backbone)
datamodule = build_data(cfg, spec, backbone.tokenizer, backbone.source)
modules = {}
for target, c in cfgs.items():
    module = instantiate_method(c.method, spec=spec, backbone=backbone, optim=c.optim)
    module.prepare(datamodule, cache_dir(c))
    modules[target] = module.eval()
batches = datamodule.eval_batches("test", batch_size=32)
stock = backbone.model.eval()
eager = copy.deepcopy(stock)
eager.set_attn_implementation("eager")


def stock_forward(model):
    def run(batch):
        extra = {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra).pooler_output
    return run


def with_kernel(fn, module, kernel):
    def run(batch):
        module.encoder.attention_impl = kernel
        return fn(batch)
    return run


ref = modules["2"]
fns = {"hf_sdpa": stock_forward(stock), "hf_eager": stock_forward(eager)}
for kernel in ("sdpa", "auto"):
    fns[f"full_{kernel}"] = with_kernel(ref.full_logits, ref, kernel)
    for target, module in modules.items():
        fns[f"hashee@{target}_{kernel}"] = with_kernel(module.predict, module, kernel)
times = {name: [] for name in fns}
faults = {name: [] for name in fns}
with torch.inference_mode():
    for fn in fns.values():
        for batch in batches[:2]:
            fn(batch)
    for _ in range(repeats):
        for name, fn in fns.items():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            for batch in batches:
                fn(batch)
            times[name].append(time.perf_counter() - start)
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
flops = {t: sum(float(m.batch_flops(b).sum()) for b in batches) for t, m in modules.items()}
full_flops = sum(float(ref.full_flops(b).sum()) for b in batches)
best = {name: min(v) for name, v in times.items()}
out = {"task": task, "threads": threads, "repeats": repeats, "allocator": allocator_setting(), "examples": len(datamodule.encoded["test"]),
       "seconds": best, "all_seconds": times, "faults_of_fastest": {n: faults[n][times[n].index(best[n])] for n in fns},
       "flops_speedup": {t: full_flops / f for t, f in flops.items()}}
for kernel in ("sdpa", "auto"):
    out[f"full_over_hf_sdpa_{kernel}"] = best[f"full_{kernel}"] / best["hf_sdpa"]
    out[f"full_over_hf_eager_{kernel}"] = best[f"full_{kernel}"] / best["hf_eager"]
    for t in modules:
        out[f"efficiency@{t}_{kernel}"] = best[f"full_{kernel}"] / best[f"hashee@{t}_{kernel}"] / out["flops_speedup"][t]
print(json.dumps(out, indent=1))
