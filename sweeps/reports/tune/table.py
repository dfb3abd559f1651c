"""Default vs tuned recipe table (BENCHMARKS.md section 0c): every trial of each tuning study, plus the
default-recipe run of the same cell from the comparison sweeps where the study has no default trial.

    python3 sweeps/reports/tune/table.py sweeps/reports/tune sweeps/reports mrpc_full sst2_full ...
"""
import glob, json, sys

TUNE = sys.argv[1]          # sweeps/reports/tune: <study>/runs/<trial>/results.json
REPORTS = sys.argv[2]       # sweeps/reports of main (the default-recipe runs)
STUDIES = sys.argv[3:]      # study dir names, e.g. mrpc_full


def load(pattern):
    out = []
    for p in sorted(glob.glob(pattern)):
        r = json.load(open(p))
        if r.get("status") == "complete":
            out.append(r)
    return out


def _is_task_default(r):
    """A trial that ran the task's default recipe (trial 0 of DefaultFirstSampler)."""
    task = r["config"]["task"].get("recipe") or {}
    rc = r.get("recipe") or {}
    return bool(task) and all(abs(float(rc[k]) - float(task[k])) < 1e-12 for k in ("lr", "epochs", "warmup_ratio"))


def target(r):
    return None if r["method"] == "full" else r["config"].get("target_speedup")


defaults = load(f"{REPORTS}/speedup_curve_*/runs/*/results.json")
print("| task | method | target | recipe | lr | epochs | warmup | val | reported | FLOPs speed-up (reported) | train min |")
print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for study in STUDIES:
    trials = load(f"{TUNE}/{study}/runs/*/results.json")
    if not trials:
        continue
    t0 = trials[0]
    best = max(trials, key=lambda r: r["val_primary"])
    rows = [(("trial 0 (default)" if _is_task_default(r) else "trial") + (", best" if r is best else ""), r)
            for r in sorted(trials, key=lambda r: (r["recipe"]["epochs"], r["recipe"]["lr"]))]
    if not any(_is_task_default(r) for r in trials):  # a study from before trial 0 was the default
        match = [r for r in defaults if (r["task"], r["method"], r["seed"], target(r)) ==
                 (t0["task"], t0["method"], t0["seed"], target(t0))]
        rows = [("default (comparison sweep)", r) for r in match[:1]] + rows
    for kind, r in rows:
        rc = r.get("recipe") or {"lr": r["config"]["optim"]["lr"], "epochs": r["config"]["trainer"]["max_epochs"],
                                 "warmup_ratio": r["config"]["optim"]["warmup_ratio"]}  # runs from before the recipes
        m = r["primary_metric"]
        mark = "**" if kind.endswith("best") else ""
        print(f"| {r['task']} | {r['method']} | {target(r) or '-'} | {kind} | {rc['lr']:.3g} | {rc['epochs']} | {rc['warmup_ratio']} | "
              f"{mark}{r['val_primary']:.4f}{mark} | {r['primary']:.4f} | {r['cost']['flops_speedup']:.3f} | {r['train'].get('train_time_s', 0)/60:.1f} |")
