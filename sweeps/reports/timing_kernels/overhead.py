"""Per-batch costs outside the layers (issue 13): hash lookup, planning, embeddings, and how many operator calls a
batch of HashEE makes against the full model. SST-2 dev, batch 32, fastest of 5 passes.

    python overhead.py TARGET THREADS > overhead_sst2_TARGETx.txt
"""
import sys, time, torch
from hydra import compose, initialize_config_module
from hashee.core.allocator import keep_freed_memory
from hashee.core.backbone import load_backbone
from hashee.core.encoder import exit_masks, plan_layers, plan_real
from hashee.experiments.steps import build_data, cache_dir, instantiate_method
from hashee.tasks.spec import TaskSpec
torch.set_num_threads(int(sys.argv[2])); keep_freed_memory()
with initialize_config_module(config_module="hashee_conf", version_base="1.3"):
    cfg = compose(config_name="config", overrides=["task=sst2", "data.glue_dir=/work/shared/data/glue", "data.train_limit=8000", "method=hashee", f"target_speedup={sys.argv[1]}", "logger=none"])
spec = TaskSpec.from_config(cfg.task); bb = load_backbone(cfg.backbone)
dm = build_data(cfg, spec, bb.tokenizer, bb.source)
m = instantiate_method(cfg.method, spec=spec, backbone=bb, optim=cfg.optim); m.prepare(dm, cache_dir(cfg)); m.eval()
batches = dm.eval_batches("test", batch_size=32)
enc = m.encoder
def timeit(fn, reps=5):
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter()
        for b in batches: fn(b)
        best = min(best, time.perf_counter() - t)
    return best
def plans(b):
    real = b["attention_mask"].bool()
    return plan_layers(exit_masks(real, m.exit_layers(b), m.depth), real, True)
with torch.inference_mode():
    for b in batches[:2]: m.predict(b); m.full_logits(b)
    print("exit_layers", timeit(m.exit_layers))
    print("exit_layers+plan", timeit(plans))
    print("plan_real", timeit(lambda b: plan_real(b["attention_mask"])))
    print("embed", timeit(lambda b: enc.embed(b["input_ids"], b.get("token_type_ids"))))
    print("hashee predict", timeit(m.predict))
    print("full", timeit(m.full_logits))
    from torch.profiler import profile, ProfilerActivity
    for name, fn in (("full", m.full_logits), ("hashee", m.predict)):
        with profile(activities=[ProfilerActivity.CPU]) as p:
            for b in batches: fn(b)
        ev = p.key_averages()
        print(name, "top-level-ish op calls per batch", sum(e.count for e in ev) / len(batches))
