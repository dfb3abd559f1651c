"""The depth comparison table (BENCHMARKS.md section 13, issue 17): every complete run of `+sweep=depth`, by
backbone, with each method's gap to its own backbone's full model, then the 2x gaps of the two backbones side
by side with each method's rank.

    python3 sweeps/reports/depth/table.py sweeps/reports/depth/runs
"""
import glob
import json
import sys

LAYERS = {"minilm": 6, "mpnet_base": 12}


def load(root):
    runs = []
    for path in sorted(glob.glob(f"{root}/*/results.json")):
        r = json.load(open(path))
        if r.get("status") == "complete":
            runs.append(r)
    return runs


def target(r):
    return None if r["method"] == "full" else float(r["config"]["target_speedup"])


def backbone(r):
    return r["config"]["backbone"]["name"]


runs = load(sys.argv[1])
full = {backbone(r): r for r in runs if r["method"] == "full"}
# The full model has no target: its jobs at 2x and 3x are one trained model with one result; keep one row.
runs = [r for r in runs if r["method"] != "full" or r is full[backbone(r)]]
order = {"full": 0, "hashee": 1, "static": 2, "deebert": 3, "pabee": 4, "berxit": 5}
runs.sort(key=lambda r: (LAYERS.get(backbone(r), 0), target(r) or 0, order.get(r["method"], 9)))
print("| backbone | layers | method | target | dev accuracy | 95 % CI | vs full (points) | val accuracy | "
      "FLOPs speed-up (dev) | operating point (val) | flagged heads (val) | train min |")
print("|---|---:|---|---:|---:|---|---:|---:|---:|---|---|---:|")
for r in runs:
    b, ref = backbone(r), full.get(backbone(r))
    gap = f"{100 * (r['primary'] - ref['primary']):+.1f}" if ref and r is not ref else "-"
    info = r["method_info"]
    op = info.get("operating_point") or {}
    knob = f"{op['knob']} {op['value']:.4g}" if op.get("knob") else "-"
    flagged = (info.get("exit_diagnostics") or {}).get("degenerate_heads")
    ci = r.get("primary_ci95") or [float("nan")] * 2
    t = target(r)
    print(f"| {b} | {LAYERS.get(b, '?')} | {r['method']} | {'-' if t is None else f'{t:g}'} | {r['primary']:.4f} | "
          f"[{ci[0]:.4f}, {ci[1]:.4f}] | {gap} | {r['val_primary']:.4f} | {r['cost']['flops_speedup']:.3f} | {knob} | "
          f"{'-' if flagged is None else flagged} | {r['train']['train_time_s'] / 60:.1f} |")

print()
backbones = sorted(full, key=lambda b: LAYERS.get(b, 0))
for t in sorted({target(r) for r in runs if target(r) is not None}):
    cells = {(backbone(r), r["method"]): r for r in runs if target(r) == t}
    methods = sorted({m for _, m in cells}, key=lambda m: order.get(m, 9))
    ranks = {b: sorted((m for m in methods if (b, m) in cells), key=lambda m: -cells[(b, m)]["primary"])
             for b in backbones}
    print(f"At {t:g}x, dev accuracy minus the same backbone's full model (points), rank among the methods run:\n")
    print("| method | " + " | ".join(f"{b} ({LAYERS.get(b, '?')} layers)" for b in backbones) + " |")
    print("|---|" + "---:|" * len(backbones))
    for m in methods:
        row = []
        for b in backbones:
            r = cells.get((b, m))
            row.append("-" if r is None or b not in full else
                       f"{100 * (r['primary'] - full[b]['primary']):+.1f} (#{ranks[b].index(m) + 1})")
        print(f"| {m} | " + " | ".join(row) + " |")
    print()
