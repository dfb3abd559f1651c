"""What efficiency a token-level method can reach at all on this CPU: the per-batch cost that does not shrink with tokens.

    python ceiling.py TASK THREADS REPEATS BATCH > ceiling_TASK_BATCH.json

Times the full model and HashEE at 1.5x/2x/3x (frequency hash from 8,000 training examples, untrained heads) on
every batch (of BATCH examples, the harness's length-sorted batches) of the dev split, each batch's functions
interleaved, REPEATS rounds, fastest time per batch. Then:
- fits the full model's per-batch time to its per-batch FLOPs, ``t = a + b * FLOPs`` (least squares over the
  batches): ``a`` is the cost of a batch that does not grow with its tokens;
- measures that cost directly twice: the full model on a one-row, two-token batch, and the encoder's 24 matrix
  products alone (its real weights, 8 rows each, in layer order, so each layer's weights come from memory as in a
  real pass);
- the *ceiling* of a target: the full model's time over the time the fit predicts for HashEE's FLOPs, divided by
  the FLOPs speed-up (``ceiling_direct``: the same with the one-row pass, once per batch, as the fixed cost). It is
  the efficiency of a method whose every cost scales with FLOPs except the full model's own fixed part, which any
  method that runs every layer pays too;
- HashEE's *excess* per target: its measured time minus the fit's prediction for its FLOPs, summed over batches.
"""

import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from scipy import stats

from hashee.core.allocator import allocator_setting, keep_freed_memory
from hashee.core.backbone import load_backbone
from hashee.core.encoder import fused_linear
from hashee.experiments.steps import build_data, cache_dir, instantiate_method
from hashee.tasks.spec import TaskSpec

TARGETS = ("1.5", "2", "3")


def load(task: str, batch_size: int):
    base = [f"task={task}", "data.glue_dir=/work/shared/data/glue", "data.train_limit=8000", "logger=none"]
    with initialize_config_module(config_module="hashee_conf", version_base="1.3"):
        cfgs = {t: compose(config_name="config", overrides=[*base, "method=hashee", f"target_speedup={t}"])
                for t in TARGETS}
    cfg = cfgs["2"]
    spec = TaskSpec.from_config(cfg.task)
    backbone = load_backbone(cfg.backbone)
    datamodule = build_data(cfg, spec, backbone.tokenizer, backbone.source)
    modules = {}
    for target, c in cfgs.items():
        module = instantiate_method(c.method, spec=spec, backbone=backbone, optim=c.optim)
        module.prepare(datamodule, cache_dir(c))
        modules[target] = module.eval()
    return modules, datamodule.eval_batches("test", batch_size=batch_size)


def fastest(fn, rounds: int = 7, inner: int = 20) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return best


def weight_stream_seconds(encoder) -> float:
    """The encoder's matrix products on 8 rows each, in layer order: what reading every weight once costs."""
    products = []
    for layer in encoder.layers:
        to_q, to_k, to_v, _ = encoder.layout.parts(layer)
        products += [fused_linear((to_q, to_k, to_v)), (layer.attention.output.dense.weight, layer.attention.output.dense.bias),
                     (layer.intermediate.dense.weight, layer.intermediate.dense.bias),
                     (layer.output.dense.weight, layer.output.dense.bias)]
    inputs = {w.shape[1]: torch.randn(8, w.shape[1]) for w, _ in products}

    def run():
        for weight, bias in products:
            F.linear(inputs[weight.shape[1]], weight, bias)
    return fastest(run)


def main() -> None:
    task, threads, repeats, batch_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    keep_freed_memory()
    modules, batches = load(task, batch_size)
    ref = modules["2"]
    fns = {"full": ref.full_logits, **{f"hashee@{t}": m.predict for t, m in modules.items()}}
    per_batch = {name: np.full((repeats, len(batches)), np.inf) for name in fns}
    with torch.inference_mode():
        for fn in fns.values():
            for batch in batches[:2]:
                fn(batch)
        for r in range(repeats):
            for i, batch in enumerate(batches):
                for name, fn in fns.items():
                    start = time.perf_counter()
                    fn(batch)
                    per_batch[name][r, i] = time.perf_counter() - start
        tiny = {"input_ids": batches[0]["input_ids"][:1, :2], "attention_mask": batches[0]["attention_mask"][:1, :2]}
        if "token_type_ids" in batches[0]:
            tiny["token_type_ids"] = batches[0]["token_type_ids"][:1, :2]
        tiny_full = fastest(lambda: ref.full_logits(tiny))
        streams = weight_stream_seconds(ref.encoder)
    best = {name: t.min(axis=0) for name, t in per_batch.items()}
    flops_full = np.array([float(ref.full_flops(b).sum()) for b in batches])
    flops = {f"hashee@{t}": np.array([float(m.batch_flops(b).sum()) for b in batches]) for t, m in modules.items()}
    fit = stats.linregress(flops_full, best["full"])
    out = {"task": task, "threads": threads, "repeats": repeats, "allocator": allocator_setting(),
           "batches": len(batches), "batch_size": batch_size, "tokens_per_batch": [int(b["attention_mask"].sum()) for b in batches],
           "fit_full": {"fixed_s_per_batch": fit.intercept, "s_per_gflop": fit.slope * 1e9, "r2": fit.rvalue ** 2,
                        "intercept_stderr_s": fit.intercept_stderr},
           "fixed_direct": {"full_model_one_row_two_tokens_s": tiny_full, "matrix_products_8_rows_s": streams},
           "full_s": float(best["full"].sum()), "full_fixed_share": fit.intercept * len(batches) / float(best["full"].sum()),
           "targets": {}, "per_batch_s": {n: t.tolist() for n, t in best.items()},
           "flops_full_per_batch": flops_full.tolist()}
    full_s = float(best["full"].sum())
    direct_fixed = tiny_full * len(batches)
    for name, f in flops.items():
        flops_speedup = flops_full.sum() / f.sum()
        predicted = fit.intercept + fit.slope * f
        measured = float(best[name].sum())
        out["targets"][name] = {
            "flops_speedup": flops_speedup, "hashee_s": measured,
            "efficiency": full_s / measured / flops_speedup,
            "ceiling": full_s / float(predicted.sum()) / flops_speedup,
            "ceiling_direct": full_s / (direct_fixed + (full_s - direct_fixed) / flops_speedup) / flops_speedup,
            "excess_s": measured - float(predicted.sum()),
            "excess_share": (measured - float(predicted.sum())) / measured}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
