"""Probe the trained PABEE STS-B model (cached checkpoint): per layer, the head's own Spearman, the
spread of its predictions, and a ridge probe (alpha chosen on val) on (a) the raw masked mean of the
tokens and (b) the shared pooler's output (dense+tanh). Same for the untrained (pretrained) backbone."""
import json, sys, glob
import numpy as np, torch
from hydra import compose, initialize_config_dir
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge
from hashee.tasks.spec import TaskSpec
from hashee.core.backbone import load_backbone
from hashee.experiments.steps import build_data, instantiate_method
from hashee.experiments.training import load_trained_model, trained_model_file

torch.set_num_threads(1)
ov = ["task=stsb", "method=pabee", "+sweep=speedup_curve", "seed=0", "data.glue_dir=/work/shared/data/glue",
      "eval.threads=1", "logger=none", "progress_bar=false", "target_speedup=2", "data.cache_dir=/tmp/m18_cache"]
with initialize_config_dir(config_dir="/tmp/m18/conf", version_base=None):
    cfg = compose("config", overrides=ov)
spec = TaskSpec.from_config(cfg.task)
backbone = load_backbone(cfg.backbone)
dm = build_data(cfg, spec, backbone.tokenizer, backbone.source)
module = instantiate_method(cfg.method, spec=spec, backbone=backbone, optim=cfg.optim)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
train_heads = "--train-heads" in sys.argv  # only the trained heads' Spearman / MSE on the train split
path = args[0] if args else str(trained_model_file(cfg))

def features(split):
    dl = dm._loader(split, 64, shuffle=False)
    raw = [[] for _ in range(6)]; pooled = [[] for _ in range(6)]; head = [[] for _ in range(6)]; labels = []
    module.eval()
    with torch.inference_mode():
        for b in dl:
            hs = module.hidden_states(b)
            m = b["attention_mask"]
            for i, h in enumerate(hs):
                mf = m.unsqueeze(-1).float()
                raw[i].append(((h * mf).sum(1) / mf.sum(1)).numpy())
                pooled[i].append(module.encoder.pool(h, m).numpy())
                head[i].append(module.layer_head(i, h, m).logits.squeeze(-1).numpy())
            labels.append(b["labels"].numpy())
    return [np.concatenate(x) for x in raw], [np.concatenate(x) for x in pooled], [np.concatenate(x) for x in head], np.concatenate(labels)

def probe(name):
    tr, va, te = features("train"), features("val"), features("test")
    out = []
    for i in range(6):
        row = {"layer": i + 1}
        row["head_val"] = spearmanr(va[2][i], va[3])[0]; row["head_test"] = spearmanr(te[2][i], te[3])[0]
        row["head_std_test"] = float(te[2][i].std()); row["head_mean_test"] = float(te[2][i].mean())
        for k, key in ((0, "raw"), (1, "pooled")):
            best = None
            for a in (0.1, 1, 10, 100):
                r = Ridge(alpha=a).fit(tr[k][i], tr[3])
                v = spearmanr(r.predict(va[k][i]), va[3])[0]
                if best is None or v > best[0]:
                    best = (v, a, spearmanr(r.predict(te[k][i]), te[3])[0])
            row[f"ridge_{key}_val"], row[f"ridge_{key}_alpha"], row[f"ridge_{key}_test"] = best
        out.append({k: (round(float(v), 4) if isinstance(v, float) else v) for k, v in row.items()})
        print(name, out[-1], flush=True)
    print(name, "label std test", float(te[3].std()), "mean", float(te[3].mean()))
    return out

res = {}
if train_heads:
    load_trained_model(__import__("pathlib").Path(path), module)
    tr = features("train")
    for i in range(6):
        print("train head", i + 1, spearmanr(tr[2][i], tr[3])[0], float(((tr[2][i] - tr[3]) ** 2).mean()), flush=True)
    sys.exit(0)
res["pretrained"] = probe("pretrained")
load_trained_model(__import__("pathlib").Path(path), module)
res["pabee_trained"] = probe("pabee")
json.dump(res, open("pabee_stsb.json", "w"), indent=1)
