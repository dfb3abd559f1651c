#!/bin/bash
# The second quiet window (after real_runs.sh): generation kernel A/B on the 2x run, GEMM throughput by rows, and
# SST-2's per-batch overheads. From the clone of the measured commit; nothing else running.
set -u
cd "${CLONE:-/tmp/m_measure}"
OUT=${OUT:-/work/runs/timing_kernels}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false HASHEE_CACHE=/work/runs/cache
git log --oneline -1; uptime
.venv/bin/python sweeps/reports/timing_kernels/gen_kernels.py \
    "/work/runs/generation_2x/+sweep=generation,eval.threads=1,method=hashee,target_speedup=2" 5 > "$OUT/gen_kernels.json" 2> "$OUT/gen_kernels.err"
echo GEN-DONE; uptime
.venv/bin/python sweeps/reports/timing_kernels/gemm_rows.py > "$OUT/gemm_rows.json"
.venv/bin/python sweeps/reports/timing_kernels/overhead.py 2 2 > "$OUT/overhead_sst2_2x.txt" 2> "$OUT/overhead.err"
echo DONE; uptime
