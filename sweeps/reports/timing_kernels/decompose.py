"""Where HashEE's efficiency goes (issue 13): the torch profiler's self time per kind of operation, full model
against HashEE, beside the FLOPs ratio of that kind of work. One process, the harness's batches of 32 of the whole
dev split, every batch once per profile, PASSES profiles each (the fastest kept per category).

    python decompose.py TASK THREADS PASSES [TARGETS] > TASK.json

Kinds: gemm (aten::addmm/mm: the projections, FFN, pooler, classifier), attention (bmm, softmax, SDPA), memory
(gathers, scatters, copies, fills), elementwise (GELU, LayerNorm, adds), other. Analytic FLOPs (METHODS.md 3) of
the projections + FFN and of attention scores + weighted sums, for the full model and HashEE on the same batches.
``ceiling`` is the efficiency HashEE would reach if everything but its matrix products scaled with its FLOPs.
"""

import json
import sys

import torch
from hydra import compose, initialize_config_module
from torch.profiler import ProfilerActivity, profile

from hashee.core.allocator import keep_freed_memory
from hashee.core.backbone import load_backbone
from hashee.experiments.steps import build_data, cache_dir, instantiate_method
from hashee.tasks.spec import TaskSpec

KINDS = {"gemm": ("aten::addmm", "aten::mm"),
         "attention": ("aten::bmm", "aten::_softmax", "aten::_scaled_dot_product_flash_attention_for_cpu"),
         "memory": ("aten::copy_", "aten::index_select", "aten::index_copy_", "aten::index_copy", "aten::index",
                    "aten::fill_", "aten::zero_", "aten::nonzero", "aten::cat", "aten::clone"),
         "elementwise": ("aten::gelu", "aten::native_layer_norm", "aten::add", "aten::add_", "aten::mul",
                         "aten::mul_", "aten::tanh", "aten::sum", "aten::div")}

task, threads, passes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
targets = (sys.argv[4] if len(sys.argv) > 4 else "1.5,2,3").split(",")
torch.set_num_threads(threads)
keep_freed_memory()
with initialize_config_module(config_module="hashee_conf", version_base="1.3"):
    cfgs = {t: compose(config_name="config", overrides=[f"task={task}", "data.glue_dir=/work/shared/data/glue",
                       "data.train_limit=8000", "logger=none", "method=hashee", f"target_speedup={t}"]) for t in targets}
first = cfgs[targets[0]]
spec = TaskSpec.from_config(first.task)
backbone = load_backbone(first.backbone)
datamodule = build_data(first, spec, backbone.tokenizer, backbone.source)
batches = datamodule.eval_batches("test", batch_size=32)


def kinds_of(fn):
    """Fastest self time per kind over ``passes`` profiles of every batch."""
    best = {}
    for _ in range(passes):
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch in batches:
                fn(batch)
        seconds = {kind: 0.0 for kind in (*KINDS, "other")}
        for event in prof.key_averages():
            kind = next((k for k, names in KINDS.items() if event.key in names), "other")
            seconds[kind] += event.self_cpu_time_total / 1e6
        seconds["total"] = sum(seconds.values())
        best = {k: min(v, best.get(k, v)) for k, v in seconds.items()}
        others = sorted((e.self_cpu_time_total / 1e6, e.key) for e in prof.key_averages()
                        if not any(e.key in names for names in KINDS.values()))
    best["top_other"] = {key: seconds for seconds, key in others[-8:]}
    return best


def flops_split(cost, exits, depth):
    """(projection + FFN FLOPs, attention FLOPs) summed over the batch: METHODS.md 3 per layer and sequence."""
    d, f = cost.hidden, cost.ffn
    real = (exits > 0).sum(dim=1).double()
    linear = attention = 0.0
    for layer in range(1, depth + 1):
        q = (exits >= layer).sum(dim=1).double()
        linear += float((4 * q * d * d + 4 * real * d * d + 4 * q * d * f).sum())
        attention += float((4 * q * real * d).sum())
    return linear, attention


out = {"task": task, "threads": threads, "passes": passes, "targets": {}}
for target in targets:
    cfg = cfgs[target]
    module = instantiate_method(cfg.method, spec=spec, backbone=backbone, optim=cfg.optim)
    module.prepare(datamodule, cache_dir(cfg))
    module.eval()
    with torch.inference_mode():
        for batch in batches[:2]:
            module.full_logits(batch), module.predict(batch)
    full, hashee = kinds_of(module.full_logits), kinds_of(module.predict)
    fl_full = fl_hashee = (0.0, 0.0)
    for batch in batches:
        real = batch["attention_mask"].bool()
        exits = module.exit_layers(batch)
        everything = torch.where(real, module.encoder.num_layers, 0)
        fl_full = tuple(a + b for a, b in zip(fl_full, flops_split(module.cost, everything, module.encoder.num_layers)))
        fl_hashee = tuple(a + b for a, b in zip(fl_hashee, flops_split(module.cost, exits, module.depth)))
    flops_speedup = sum(float(module.full_flops(b).sum()) for b in batches) / sum(float(module.batch_flops(b).sum()) for b in batches)
    rest_full = full["total"] - full["gemm"]
    ceiling = full["total"] / (hashee["gemm"] + rest_full / flops_speedup) / flops_speedup
    out["targets"][target] = {
        "flops_speedup": flops_speedup, "full_s": full, "hashee_s": hashee,
        "time_ratio": {k: full[k] / hashee[k] for k in (*KINDS, "other", "total")},
        "flops_ratio": {"gemm": fl_full[0] / fl_hashee[0], "attention": fl_full[1] / fl_hashee[1]},
        "profiled_efficiency": full["total"] / hashee["total"] / flops_speedup,
        "gemm_efficiency": full["gemm"] / hashee["gemm"] / (fl_full[0] / fl_hashee[0]),
        "ceiling": ceiling}
print(json.dumps(out, indent=1))
