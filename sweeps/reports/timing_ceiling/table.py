"""The ceiling table of BENCHMARKS.md section 0b from ``ceiling_TASK_BATCH.json`` (``python3 table.py``).

Per target: measured efficiency, then the ceiling with two fixed costs per batch: the one-row pass (a lower bound on
the fixed cost: a one-row pass runs its products in the small-row regime) and the intercept of the line through the
full model's time on 1..BATCH rows (the regime HashEE's layers run in, 70-800 rows at batch 32).
"""

import json
from pathlib import Path

from hashee.core.cost import efficiency_ceiling

TARGETS = ("hashee@1.5", "hashee@2", "hashee@3")
here = Path(__file__).parent
print("| task | batch | batches | fixed ms / batch: rows line (+- se), one-row pass, products alone | fixed share of full "
      "(rows line) | full s | HashEE eff. [ceiling: one-row .. rows line] 1.5x | 2x | 3x |")
print("|---|---:|---:|---|---:|---:|---|---|---|")
for batch in (32, 128):
    for task in ("sst2", "mrpc", "stsb"):
        path = here / f"ceiling_{task}_{batch}.json"
        if not path.exists():
            continue
        d = json.loads(path.read_text())
        rows, direct, full_s = d["fixed_by_rows"], d["fixed_direct"], d["full_s"]
        one_row = direct["full_model_one_row_two_tokens_s"]
        cells = []
        for target in TARGETS:
            t = d["targets"][target]
            low_fixed = efficiency_ceiling(full_s, one_row * d["batches"], t["flops_speedup"])
            cells.append(f"{t['efficiency']:.3f} [{low_fixed:.3f} .. {t['ceiling']:.3f}]")
        print(f"| {task} | {batch} | {d['batches']} | {rows['fixed_s'] * 1e3:.1f} (+- {rows['fixed_stderr_s'] * 1e3:.1f}), "
              f"{one_row * 1e3:.1f}, {direct['matrix_products_8_rows_s'] * 1e3:.1f} | {d['full_fixed_share']:.3f} "
              f"| {full_s:.3f} | " + " | ".join(cells) + " |")
