"""Training-step time (forward, backward, AdamW step) of the full model and HashEE at 2x/3x on the same
SST-2 training batches, interleaved, one process. argv: backbone threads rounds steps [--profile]."""
import os, sys, json, time, torch
GLUE = os.environ.get("G", "../shared/data/glue")
from hydra import compose, initialize_config_module
from hashee.core.backbone import load_backbone
from hashee.experiments.steps import build_data, instantiate_method, cache_dir
from hashee.tasks.spec import TaskSpec
backbone, threads, rounds, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
def make(method, target):
    with initialize_config_module(config_module="hashee_conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["task=sst2", f"data.glue_dir={GLUE}",
                      "data.train_limit=4000", f"method={method}", f"target_speedup={target}", "logger=none",
                      f"backbone={backbone}"])
    spec = TaskSpec.from_config(cfg.task); bb = load_backbone(cfg.backbone)
    dm = build_data(cfg, spec, bb.tokenizer, bb.source)
    m = instantiate_method(cfg.method, spec=spec, backbone=bb, optim=cfg.optim); m.prepare(dm, cache_dir(cfg)); m.train()
    m.log = lambda *a, **k: None
    return m, dm
models = {"full": make("full", 2), "hashee2": make("hashee", 2), "hashee3": make("hashee", 3)}
dm = models["full"][1]; dm.setup("fit")
loader = dm.train_dataloader(); it = iter(loader); batches = [next(it) for _ in range(steps)]
from hashee.methods.base import adamw
opts = {f"{k}/{'fused' if fz else 'loop'}": adamw(m.trainable_parameters(), 1e-5, fz) for k, (m, _) in models.items() for fz in (False, True)}
best = {k: [1e9, 1e9, 1e9] for k in opts}
for r in range(rounds):
    for k in opts:
        m = models[k.split("/")[0]][0]
        f = b = o = 0.0
        for i, batch in enumerate(batches):
            t0 = time.perf_counter(); loss = m.training_step(batch, i); t1 = time.perf_counter()
            loss.backward(); t2 = time.perf_counter()
            opts[k].step(); opts[k].zero_grad(set_to_none=True); t3 = time.perf_counter()
            f += t1 - t0; b += t2 - t1; o += t3 - t2
        best[k] = [min(x, y) for x, y in zip(best[k], (f, b, o))]
        print(k, r, [round(x / steps, 3) for x in (f, b, o)], flush=True)
print(json.dumps({"backbone": backbone, "threads": threads, "steps": steps,
                  "per_step_s": {k: {"forward": v[0] / steps, "backward": v[1] / steps, "adamw": v[2] / steps,
                                     "total": sum(v) / steps} for k, v in best.items()}}), flush=True)
if "--profile" in sys.argv:
    from torch.profiler import profile, ProfilerActivity
    for k in ("full/fused", "hashee3/fused"):
        m = models[k.split("/")[0]][0]
        with profile(activities=[ProfilerActivity.CPU]) as p:
            for i, batch in enumerate(batches[:2]):
                loss = m.training_step(batch, i); loss.backward(); opts[k].step(); opts[k].zero_grad(set_to_none=True)
        print(k); print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=22))
