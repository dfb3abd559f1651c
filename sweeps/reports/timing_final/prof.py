import sys, torch, time
from hydra import compose, initialize_config_module
from hashee.core.backbone import load_backbone
from hashee.experiments.steps import build_data, instantiate_method, cache_dir
from hashee.tasks.spec import TaskSpec
from hashee.core.cost import time_inference
torch.set_num_threads(int(sys.argv[2]))
with initialize_config_module(config_module="hashee_conf", version_base="1.3"):
    cfg = compose(config_name="config", overrides=["task=sst2", "data.glue_dir=/work/shared/data/glue",
                  "data.train_limit=8000", "method=hashee", f"target_speedup={sys.argv[1]}", "logger=none"])
spec = TaskSpec.from_config(cfg.task); bb = load_backbone(cfg.backbone)
dm = build_data(cfg, spec, bb.tokenizer, bb.source)
m = instantiate_method(cfg.method, spec=spec, backbone=bb, optim=cfg.optim); m.prepare(dm, cache_dir(cfg)); m.eval()
batches = dm.eval_batches("test", batch_size=32)
for k, fn in (("full", m.full_logits), ("hashee", m.predict)) * 2:
    print(k, time_inference(fn, batches, 2))
from torch.profiler import profile, ProfilerActivity
with torch.inference_mode():
    for name, fn in (("full", m.full_logits), ("hashee", m.predict)):
        with profile(activities=[ProfilerActivity.CPU]) as p:
            for b in batches: fn(b)
        print(name); print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=22))
