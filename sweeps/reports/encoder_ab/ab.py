"""A/B in one process, same weights: encoder at bc3d90f (/tmp/bench) vs this checkout; HF stock reference."""
import sys, json, importlib.util, torch
from hydra import compose, initialize_config_module
from hashee.backbone import load_backbone
from hashee.run import build_data, instantiate_method, cache_dir
from hashee.tasks import TaskSpec
from hashee.cost import time_inference

task, threads, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
targets = sys.argv[4].split(",")
torch.set_num_threads(threads)
spec_ = importlib.util.spec_from_file_location("old_encoder", "/tmp/bench/hashee/encoder.py")
old = importlib.util.module_from_spec(spec_); sys.modules["old_encoder"] = old; spec_.loader.exec_module(old)
out = []
for target in targets:
    with initialize_config_module(config_module="hashee_conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"task={task}", "data.glue_dir=/work/shared/data/glue",
                      "data.train_limit=8000", "method=hashee", f"target_speedup={target}", "logger=none"])
    spec = TaskSpec.from_config(cfg.task); bb = load_backbone(cfg.backbone)
    dm = build_data(cfg, spec, bb.tokenizer, bb.source)
    m = instantiate_method(cfg.method, spec=spec, backbone=bb, optim=cfg.optim); m.prepare(dm, cache_dir(cfg)); m.eval()
    oenc = old.MultiExitEncoder(m.encoder.layers[0].__class__ and bb.model, pooling=m.encoder.pooling).eval()
    batches = dm.eval_batches("test")
    def hashee_old(b):
        e = m.exit_layers(b)
        h = oenc.forward_token_exits(b["input_ids"], b["attention_mask"], e, m.depth, b.get("token_type_ids"), attend_exited=m.attend_exited)
        return m.head(h, b["attention_mask"])
    def full_old(b):
        return m.head(oenc.forward_full(b["input_ids"], b["attention_mask"], b.get("token_type_ids")), b["attention_mask"])
    def hf(b):
        return bb.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b.get("token_type_ids")).pooler_output
    fns = {"hf": hf, "full_old": full_old, "full_new": m.full_logits, "hashee_old": hashee_old, "hashee_new": m.predict}
    with torch.inference_mode():
        d_h = max(float((hashee_old(b) - m.predict(b)).abs().max()) for b in batches)
        d_f = max(float((full_old(b) - m.full_logits(b)).abs().max()) for b in batches)
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            times[k].append(time_inference(fn, batches, 2))
    f = sum(float(m.cost.full_flops(b["attention_mask"].sum(1)).sum()) for b in batches)
    h = sum(float(m.batch_flops(b).sum()) for b in batches)
    best = {k: min(v) for k, v in times.items()}
    row = {"task": task, "target": target, "threads": threads, "reps": reps, "flops_speedup": round(f / h, 4),
           "max_diff_hashee": d_h, "max_diff_full": d_f, "best_s": {k: round(v, 4) for k, v in best.items()},
           "spread": {k: round(max(v) / min(v), 3) for k, v in times.items()},
           "eff_old": round(best["full_old"] / best["hashee_old"] / (f / h), 3),
           "eff_new": round(best["full_new"] / best["hashee_new"] / (f / h), 3),
           "full_old_over_hf": round(best["full_old"] / best["hf"], 3), "full_new_over_hf": round(best["full_new"] / best["hf"], 3)}
    print(json.dumps(row), flush=True); out.append(row)
