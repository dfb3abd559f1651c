#!/bin/bash
# The rest of the 2026-12-06 quiet window, after quiet3.sh's ceilings: the generation 1.5x run's timing against the
# same decoding steps, the one batch-1 cell that missed (MRPC BERxiT 3x, first timed beside three trainings) re-run
# alone, and the scaling table with each cell's ceiling. From the clone of the measured commit; nothing else running.
source "$(dirname "$0")/env.sh"
.venv/bin/python sweeps/reports/timing_kernels/gen_kernels.py \
    "/work/runs/generation_1.5x/+sweep=generation,eval.threads=1,method=hashee,target_speedup=1.5" 5 > "$OUT/gen_kernels_1.5x.json" 2> "$OUT/gen_kernels.err"
echo GEN-DONE; uptime
.venv/bin/hashee-bench task=mrpc method=berxit target_speedup=3 seed=0 data.glue_dir=$G data.train_limit=8000 \
    eval.threads=1 logger=none progress_bar=false hydra.run.dir="$OUT/mrpc_berxit_3x" > "$OUT/mrpc_berxit_3x.log" 2>&1
echo "BERXIT-DONE rc=$?"; uptime
# (its scaling step, started here, was stopped after four inputs and re-run by quiet5.sh; see that script)
