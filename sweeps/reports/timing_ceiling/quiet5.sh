#!/bin/bash
# The scaling table with each cell's ceiling, re-run at the commit where fixed_batch_cost fits its line on
# sub-batches of at most 1,024 tokens (quiet4.sh's run, at ae11057, fitted through 128 rows: for bbc_news@128 that
# line's intercept was negative, so its ceilings read 1.0). From the clone of the measured commit; nothing else running.
source "$(dirname "$0")/env.sh"
timeout 2100 .venv/bin/hashee-scaling data.glue_dir=$G --inputs sst2,rotten_tomatoes,mrpc,bbc_news@128,bbc_news@512 \
    --batch-sizes 1,8,32,128 --targets 1.5,2,3 --tokens 3000 --repeats 3 --threads 2 --out "$OUT/scaling" > "$OUT/scaling.log" 2>&1
echo "SCALING-DONE rc=$?"; uptime
