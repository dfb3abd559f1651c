"""What efficiency a token-level method can reach at all on this CPU: the per-batch cost that does not shrink with tokens.

    python ceiling.py TASK THREADS REPEATS BATCH > ceiling_TASK_BATCH.json

Times the full model and HashEE at 1.5x/2x/3x (frequency hash from 8,000 training examples, untrained heads) on
every batch (of BATCH examples, the harness's length-sorted batches) of the dev split, each batch's functions
interleaved, REPEATS rounds, fastest time per batch. Then:
- the *fixed cost* of a batch, the part of its time that does not grow with its tokens
  (``hashee.core.cost.fixed_batch_cost``, as ``hashee-scaling`` measures it): the full model on the first k rows
  of the dev split's median-length batch, k = 1, 2, 4, ... BATCH (the same width, so the same padding and attention
  shape per row), fastest of 5 rounds each; the intercept of a least-squares line of time against the real tokens
  (``fixed_by_rows``; here through every row count, as the committed JSON was measured, where ``hashee-scaling``
  keeps sub-batches of at most 1,024 tokens: at batch 128 on MRPC the full model's time per token rises and the
  line's intercept comes out negative);
- two direct checks of that cost: the full model on a one-row, two-token batch, and the encoder's 24 matrix
  products alone (its real weights, 8 rows each, in layer order, so each layer's weights come from memory as in a
  real pass);
- the *ceiling* of a target (``hashee.core.cost.efficiency_ceiling``): the full model's time over the time of a
  method that pays the fixed cost once per batch and the rest in proportion to its FLOPs, divided by the FLOPs
  speed-up. It is the most that any method
  that runs every layer on every batch can reach on this machine. HashEE's *excess* is its measured time minus
  that method's;
- a cross-check: the full model's per-batch times over the dev split against their FLOPs, fitted as a line
  (``fit_full_over_batches``). Its intercept mixes lengths: attention grows with the square of the length and the
  full model computes its (at most 10 %) padding, so it is not used for the ceiling.

The committed JSONs ran at 6921007, whose ``load`` composed the configs itself; it now builds them with
``hashee-scaling``'s ``build_input``, checked to give the same batches, per-batch FLOPs and FLOPs speed-ups.
"""

import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from hashee.cli.scaling import build_input
from hashee.core.allocator import allocator_setting, keep_freed_memory
from hashee.core.cost import efficiency_ceiling, fastest_call, fixed_batch_cost
from hashee.core.encoder import fused_linear

TARGETS = ("1.5", "2", "3")


def load(task: str, batch_size: int):
    """HashEE at every target on one backbone, and the whole dev split in batches of ``batch_size``, as
    ``hashee-scaling`` builds an input (its token budget set high enough to keep every example)."""
    options = argparse.Namespace(targets=",".join(TARGETS), tokens=10 ** 9)
    data = build_input(task, ["data.glue_dir=/work/shared/data/glue", "data.train_limit=8000"], options, batch_size)
    return data["modules"], data["datamodule"].eval_batches("test", batch_size=batch_size)


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
    return fastest_call(run, calls=20, rounds=7)


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
        tiny_full = fastest_call(lambda: ref.full_logits(tiny), calls=20, rounds=7)
        streams = weight_stream_seconds(ref.encoder)
        by_rows = fixed_batch_cost(ref.full_logits, batches[len(batches) // 2], max_tokens=None)  # every row count
    best = {name: t.min(axis=0) for name, t in per_batch.items()}
    flops_full = np.array([float(ref.full_flops(b).sum()) for b in batches])
    flops = {f"hashee@{t}": np.array([float(m.batch_flops(b).sum()) for b in batches]) for t, m in modules.items()}
    fit = stats.linregress(flops_full, best["full"])
    full_s = float(best["full"].sum())
    fixed = by_rows["fixed_s"] * len(batches)
    out = {"task": task, "threads": threads, "repeats": repeats, "allocator": allocator_setting(),
           "batches": len(batches), "batch_size": batch_size, "tokens_per_batch": [int(b["attention_mask"].sum()) for b in batches],
           "fixed_by_rows": by_rows,
           "fit_full_over_batches": {"fixed_s_per_batch": fit.intercept, "intercept_stderr_s": fit.intercept_stderr,
                                     "s_per_gflop": fit.slope * 1e9, "r2": fit.rvalue ** 2},
           "fixed_direct": {"full_model_one_row_two_tokens_s": tiny_full, "matrix_products_8_rows_s": streams},
           "full_s": full_s, "full_fixed_share": fixed / full_s,
           "targets": {}, "per_batch_s": {n: t.tolist() for n, t in best.items()},
           "flops_full_per_batch": flops_full.tolist()}
    for name, f in flops.items():
        flops_speedup = float(flops_full.sum() / f.sum())
        measured = float(best[name].sum())
        ceiling = efficiency_ceiling(full_s, fixed, flops_speedup)
        ideal = full_s / ceiling / flops_speedup  # the time of a method at the ceiling
        out["targets"][name] = {
            "flops_speedup": flops_speedup, "hashee_s": measured, "efficiency": full_s / measured / flops_speedup,
            "ceiling": ceiling, "excess_s": measured - ideal, "excess_share": (measured - ideal) / measured,
            "ceiling_from_fit_over_batches": full_s / float((fit.intercept + fit.slope * f).sum()) / flops_speedup}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
