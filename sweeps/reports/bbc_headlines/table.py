import json, glob, sys
rows = []
for f in sorted(glob.glob(sys.argv[1] + '/*/results.json')):
    r = json.load(open(f))
    if r['status'] != 'complete':
        continue
    c, m = r['cost'], r['metrics']
    target = r['config'].get('target_speedup') if r['method'] != 'full' else None
    p = r['method_info']['prepare']
    depths = f"{p['source_hash']['depth']}/{p['target_hash']['depth']}" if 'source_hash' in p else "6/6"
    rows.append((r['method'], target, m['rouge1'], m['rouge2'], m['rougeL'], r['val_metrics']['rougeL'], c['flops_speedup'],
                 c['flops_per_generated_token'] / 1e6, c['measured_speedup'], c['measured_speedup_total_time'], c['efficiency'],
                 c['generated_tokens'], depths, p.get('expected_train_speedup'), r['train']['train_time_s'] / 60))
print("| method | target | ROUGE-1 | ROUGE-2 | ROUGE-L | val ROUGE-L | FLOPs speed-up | MFLOPs / generated token | measured speed-up (per token) | measured speed-up (total time) | efficiency | generated tokens | depth enc/dec | expected (train) | train min |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
for r in rows:
    cells = [r[0], '-' if r[1] is None else f"{r[1]}"] + [f"{x:.4f}" for x in r[2:6]] + [f"{r[6]:.3f}", f"{r[7]:.1f}", f"{r[8]:.3f}", f"{r[9]:.3f}", f"{r[10]:.3f}", str(r[11]), r[12], '-' if r[13] is None else f"{r[13]:.3f}", f"{r[14]:.1f}"]
    print("| " + " | ".join(cells) + " |")
for f in sorted(glob.glob(sys.argv[1] + '/*/results.json')):
    r = json.load(open(f))
    if r['status'] == 'complete':
        print(r['method'], r['config'].get('target_speedup'), [s['prediction'] for s in r['samples'][:4]])
