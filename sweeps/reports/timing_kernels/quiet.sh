#!/bin/bash
# The quiet timing window of issue 13 at the attention-kernel change: nothing else runs. From a clone of the
# measured commit with its own .venv (make setup). Writes into $OUT.
set -u
cd "${CLONE:-/tmp/m_measure}"
OUT=${OUT:-/work/runs/timing_kernels}
G=/work/shared/data/glue
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
git log --oneline -1; uptime
for t in sst2 mrpc stsb; do .venv/bin/python sweeps/reports/timing_kernels/ab.py $t 2 5 > "$OUT/ab_$t.json" 2> "$OUT/ab_$t.err"; done
echo AB-DONE; uptime
for t in sst2 mrpc stsb; do .venv/bin/python sweeps/reports/timing_kernels/decompose.py $t 2 3 > "$OUT/decompose_$t.json" 2> "$OUT/decompose_$t.err"; done
echo DECOMPOSE-DONE; uptime
for alloc in keep_freed_memory default; do
  .venv/bin/hashee-scaling data.glue_dir=$G data.train_limit=8000 --inputs sst2,mrpc,stsb --batch-sizes 32 --targets 1.5,2,3 \
      --tokens 1000000 --repeats 5 --threads 2 --allocator $alloc --out "$OUT/scaling_$alloc" > "$OUT/scaling_$alloc.log" 2>&1
done
echo SCALING-DONE; uptime
