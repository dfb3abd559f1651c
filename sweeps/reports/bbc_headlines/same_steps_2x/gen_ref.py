"""On one trained generation run (its best checkpoint): time the method, the same weights generating freely
without exits (the old reference) and the method's tokens replayed without exits (the new one), interleaved."""
import json, sys, time
from pathlib import Path
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from hashee.data.seq2seq import Seq2SeqDataModule
from hashee.experiments.generation import build_module, generate_split, time_generation
from hashee.experiments.steps import cache_dir
from hashee.seq2seq.backbone import load_seq2seq_backbone
from hashee.tasks.generation import GenerationSpec

run = Path(sys.argv[1]); repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
saved = json.loads((run / "results.json").read_text())
cfg = OmegaConf.create(saved["config"])
torch.set_num_threads(int(cfg.eval.threads))
spec = GenerationSpec.from_config(cfg.task); backbone = load_seq2seq_backbone(cfg.backbone); gen = cfg.generation
dm = Seq2SeqDataModule(spec, cfg.data, backbone.tokenizer, backbone.source, backbone.start_id, backbone.pad_id,
                       int(gen.max_source_length), int(gen.max_target_length), batch_size=int(cfg.data.batch_size),
                       eval_batch_size=int(cfg.data.eval_batch_size), seed=int(cfg.seed),
                       cache_dir=str(Path(cache_dir(cfg)) / "tokenized"))
dm.setup()
module = build_module(cfg, spec, backbone); module.prepare(dm, cache_dir(cfg))
module.load_state_dict(torch.load(saved["train"]["stages"][-1]["best_checkpoint"], map_location="cpu", weights_only=True)["state_dict"])
module.eval()
batches = dm.eval_batches("test")
test = generate_split(module, batches)
flops_speedup = test["flops_full"] / test["flops"]
best = {"method": None, "free": None, "replay": None}
for _ in range(repeats):
    for name, exits, forced in (("free", False, None), ("method", True, None), ("replay", False, test["batch_tokens"])):
        t, produced = time_generation(module, batches, exits, 2, forced)
        if best[name] is None or t < best[name][0]:
            best[name] = (t, produced)
(tm, pm), (tf, pf), (tr, pr) = best["method"], best["free"], best["replay"]
out = {"run": str(run), "threads": torch.get_num_threads(), "flops_speedup": flops_speedup, "tokens": {"method": pm, "free": pf, "replay": pr},
       "seconds": {"method": tm, "free": tf, "replay": tr},
       "old_reference": {"measured_per_token": (tf / pf) / (tm / pm), "efficiency": (tf / pf) / (tm / pm) / flops_speedup},
       "same_steps_reference": {"measured": tr / tm, "efficiency": tr / tm / flops_speedup}}
print(json.dumps(out, indent=1))
