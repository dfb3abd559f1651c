"""Default vs tuned recipe over 3 seeds on SST-2 (BENCHMARKS.md section 0): the full model, PABEE 2x and
HashEE 2x, from the committed runs (section 0's default-recipe runs, the dbfa8a5 default HashEE runs and the
recipe=tuned runs).

    python3 sweeps/reports/speedup_curve_sst2_tuned/table.py sweeps/reports
"""
import glob, json, statistics, sys

REPORTS = sys.argv[1]
CELLS = [  # (label, glob of results.json under REPORTS)
    ("full, default (section 0)", "speedup_curve_sst2/runs/method=full,seed=*,target_speedup=2,task=sst2"),
    ("full, tuned", "speedup_curve_sst2_tuned/runs/method=full,recipe=tuned,seed=*,target_speedup=2,task=sst2"),
    ("PABEE 2x, default (section 0)", "speedup_curve_sst2/runs/method=pabee,seed=*,target_speedup=2,task=sst2"),
    ("PABEE 2x, tuned", "speedup_curve_sst2_tuned/runs/method=pabee,recipe=tuned,seed=*,target_speedup=2,task=sst2"),
    ("HashEE 2x, default (section 0)", "speedup_curve_sst2/runs/method=hashee,seed=*,target_speedup=2,task=sst2"),
    ("HashEE 2x, default at dbfa8a5", "sst2_hashee_at_dbfa8a5/runs/method=hashee,seed=*,target_speedup=2,task=sst2"),
    ("HashEE 2x, tuned", "speedup_curve_sst2_tuned/runs/method=hashee,recipe=tuned,seed=*,target_speedup=2,task=sst2"),
]
EXTRA = {"HashEE 2x, default at dbfa8a5":  # its seed 0 is the tuning study's trial 0
         "tune/sst2_hashee/runs/data.train_limit=8000,eval.threads=1,method=hashee,recipe.epochs=3,recipe.lr=5e-05,"
         "recipe.warmup_ratio=0.1,seed=0,target_speedup=2,task=sst2"}


def runs(pattern):
    return [json.load(open(p)) for p in sorted(glob.glob(f"{REPORTS}/{pattern}/results.json"))]


print("| method, recipe | seeds | val per seed | val mean | dev per seed | dev mean ± std | FLOPs speed-up (dev) |")
print("|---|---:|---|---:|---|---:|---:|")
for label, pattern in CELLS:
    rs = runs(pattern) + (runs(EXTRA[label]) if label in EXTRA else [])
    rs.sort(key=lambda r: r["seed"])
    val = [r["val_primary"] for r in rs]
    dev = [r["primary"] for r in rs]
    speed = statistics.mean(r["cost"]["flops_speedup"] for r in rs)
    print(f"| {label} | {len(rs)} | {' / '.join(f'{v:.4f}' for v in val)} | {statistics.mean(val):.4f} | "
          f"{' / '.join(f'{v:.4f}' for v in dev)} | {statistics.mean(dev):.4f} ± {statistics.stdev(dev):.4f} | {speed:.2f} |")
