#!/bin/bash
# The quiet window of 2026-12-06 (second session), at 6921007: the fixed per-batch cost and the efficiency ceiling at
# batch 32 and 128 on SST-2, MRPC and STS-B dev.
# From the clone of the measured commit; nothing else running.
source "$(dirname "$0")/env.sh"
for batch in 32 128; do
  for task in sst2 mrpc stsb; do
    .venv/bin/python sweeps/reports/timing_ceiling/ceiling.py $task 2 5 $batch > "$OUT/ceiling_${task}_$batch.json" 2> "$OUT/ceiling.err"
    echo "CEILING $task $batch"; uptime
  done
done
# (this window was stopped here, after the ceilings, and went on with quiet4.sh at ae11057, which adds each
# scaling cell's ceiling to hashee-scaling. At ae11057 ceiling.py measures the fixed cost with the function it moved
# into hashee.core.cost, the same procedure plus one untimed call per row count; its JSON keys are the same)
