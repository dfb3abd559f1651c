"""The BENCHMARKS.md 0b tables of the attention-kernel window from its outputs: python3 table.py DIR."""

import json
import sys
from pathlib import Path

folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
TASKS = ("sst2", "mrpc", "stsb")
TARGETS = ("1.5", "2", "3")


def outputs(pattern: str):
    """``(task, parsed JSON)`` of every task whose output file (``pattern`` with the task) exists."""
    return [(task, json.loads((folder / pattern.format(task)).read_text())) for task in TASKS
            if (folder / pattern.format(task)).exists()]


print("| task | examples | hf SDPA s | hf eager s | full s: SDPA / auto | full / hf SDPA: SDPA, auto | full / hf eager, auto |"
      " HashEE eff. SDPA (1.5x / 2x / 3x) | HashEE eff. auto (1.5x / 2x / 3x) | FLOPs x (1.5 / 2 / 3) |")
print("|---|---:|---:|---:|---|---|---:|---|---|---|")
for task, ab in outputs("ab_{}.json"):
    s = ab["seconds"]
    eff = {k: " / ".join(f"{ab[f'efficiency@{t}_{k}']:.3f}" for t in TARGETS) for k in ("sdpa", "auto")}
    flops = " / ".join(f"{ab['flops_speedup'][t]:.2f}" for t in TARGETS)
    print(f"| {task} | {ab['examples']} | {s['hf_sdpa']:.3f} | {s['hf_eager']:.3f} | {s['full_sdpa']:.3f} / {s['full_auto']:.3f} "
          f"| {ab['full_over_hf_sdpa_sdpa']:.3f}, **{ab['full_over_hf_sdpa_auto']:.3f}** | {ab['full_over_hf_eager_auto']:.3f} "
          f"| {eff['sdpa']} | {eff['auto']} | {flops} |")
print()
print("| task | target | FLOPs x | HashEE / full time per kind: gemm, attention, memory, elementwise, other "
      "| FLOPs ratio: gemm, attention | gemm efficiency | profiled efficiency | ceiling (all but gemm ideal) |")
print("|---|---:|---:|---|---|---:|---:|---:|")
for task, decomposed in outputs("decompose_{}.json"):
    for target, row in decomposed["targets"].items():
        full, hashee = row["full_s"], row["hashee_s"]
        kinds = ", ".join(f"{hashee[k]:.3f}/{full[k]:.3f}" for k in ("gemm", "attention", "memory", "elementwise", "other"))
        print(f"| {task} | {target} | {row['flops_speedup']:.2f} | {kinds} | {row['flops_ratio']['gemm']:.2f}, "
              f"{row['flops_ratio']['attention']:.2f} | {row['gemm_efficiency']:.3f} | {row['profiled_efficiency']:.3f} "
              f"| {row['ceiling']:.3f} |")
print()
print("| allocator | input | hf s | full s | full / hf | HashEE at full depth / hf | noise | HashEE eff. 1.5x, paired | 2x | 3x |")
print("|---|---|---:|---:|---:|---:|---:|---|---|---|")
for allocator in ("keep_freed_memory", "default"):
    path = folder / f"scaling_{allocator}" / "scaling.json"
    if not path.exists():
        continue
    cells = {}
    for row in json.loads(path.read_text())["rows"]:
        cells.setdefault(row["input"], {})[row["method"]] = row
    for name, rows in cells.items():
        full = rows["full"]
        effs = [f"{rows[f'hashee@{t}']['efficiency']:.3f}, {rows[f'hashee@{t}']['efficiency_paired']:.3f}" for t in TARGETS]
        print(f"| {allocator} | {name} | {rows['hf']['seconds']:.3f} | {full['seconds']:.3f} | {full['over_hf']:.3f} | "
              f"{rows['hashee_full_depth']['over_hf']:.3f} | {full['noise_check']:.3f} | " + " | ".join(effs) + " |")
