#!/bin/bash
# The quiet timing window (issue 13): nothing else runs. From /work/main at HEAD.
cd /work/main
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
git log --oneline -1
uptime
.venv/bin/hashee-scaling data.glue_dir=/work/shared/data/glue data.train_limit=8000 --inputs sst2,mrpc,stsb --batch-sizes 32 --targets 1.5,2,3 --tokens 1000000 --repeats 5 --threads 2 --out /work/runs/timing_final
echo SCALING-DONE; uptime
HASHEE_CACHE=/work/m21_cache .venv/bin/python sweeps/reports/bbc_headlines/same_steps_2x/gen_ref.py "/work/runs/generation_1.5/+sweep=generation,eval.threads=1,method=hashee,target_speedup=1.5" 5 > /work/runs/gen_ref_1.5.json 2> /work/runs/gen_ref_1.5.err
echo GENREF-DONE; uptime
