"""How much a second thread speeds up the matrix products of one MiniLM layer, by the number of tokens
computed (M rows): HashEE's deeper layers compute fewer tokens than the full model's."""
import json, sys, time, torch
shapes = {"qkv": (384, 1152), "attn_out": (384, 384), "ffn_in": (384, 1536), "ffn_out": (1536, 384)}
out = []
for m in (800, 400, 200, 100, 50, 25):
    row = {"tokens": m}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        total = 0.0
        for name, (i, o) in shapes.items():
            x, w, b = torch.randn(m, i), torch.randn(o, i), torch.randn(o)
            for _ in range(20): torch.addmm(b, x, w.t())
            best = float("inf")
            for _ in range(7):
                t = time.perf_counter()
                for _ in range(50): torch.addmm(b, x, w.t())
                best = min(best, (time.perf_counter() - t) / 50)
            total += best
        row[f"layer_matmuls_ms_{threads}t"] = round(total * 1e3, 4)
    row["second_thread_speedup"] = round(row["layer_matmuls_ms_1t"] / row["layer_matmuls_ms_2t"], 3)
    out.append(row); print(row, flush=True)
json.dump(out, open(sys.argv[1] if len(sys.argv) > 1 else "/tmp/prof/threads_mm.json", "w"), indent=1)
