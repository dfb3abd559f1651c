"""Profile HashEE vs full on SST-2 dev with MiniLM (untrained head; speed only), current layout."""
import sys, json, torch
from hydra import compose, initialize_config_module
from hashee.core.backbone import load_backbone
from hashee.experiments.steps import build_data, instantiate_method, cache_dir
from hashee.tasks.spec import TaskSpec
from hashee.core.cost import time_inference
target, threads, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
with initialize_config_module(config_module="hashee_conf", version_base="1.3"):
    cfg = compose(config_name="config", overrides=["task=sst2", "data.glue_dir=/work/shared/data/glue",
                  "data.train_limit=8000", "method=hashee", f"target_speedup={target}", "logger=none"])
spec = TaskSpec.from_config(cfg.task); bb = load_backbone(cfg.backbone)
dm = build_data(cfg, spec, bb.tokenizer, bb.source)
m = instantiate_method(cfg.method, spec=spec, backbone=bb, optim=cfg.optim); m.prepare(dm, cache_dir(cfg)); m.eval()
batches = dm.eval_batches("test")
f = sum(float(m.cost.full_flops(b["attention_mask"].sum(1)).sum()) for b in batches)
h = sum(float(m.batch_flops(b).sum()) for b in batches)
fns = {"full": m.full_logits, "hashee": m.predict}
best = {k: 1e9 for k in fns}
for _ in range(reps):
    for k, fn in fns.items():
        best[k] = min(best[k], time_inference(fn, batches, 2))
print(json.dumps({"target": target, "threads": threads, "flops_speedup": f / h, "best": best,
                  "measured": best["full"] / best["hashee"], "eff": best["full"] / best["hashee"] / (f / h)}), flush=True)
if "--profile" in sys.argv:
    from torch.profiler import profile, ProfilerActivity
    with torch.inference_mode():
        for name, fn in (("full", m.full_logits), ("hashee", m.predict)):
            with profile(activities=[ProfilerActivity.CPU]) as p:
                for b in batches: fn(b)
            print(name); print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
