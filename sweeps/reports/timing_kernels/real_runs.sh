#!/bin/bash
# The real command at the measured commit (clone /tmp/m_measure), one run at a time, nothing else running.
cd /tmp/m_measure
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=offline HASHEE_CACHE=/work/runs/cache
G=/work/shared/data/glue
git log --oneline -1; date
.venv/bin/hashee-bench task=sst2 data.glue_dir=$G data.train_limit=8000 method=hashee target_speedup=2 seed=0 \
    logger=none progress_bar=false hydra.run.dir=/work/runs/sst2_hashee_2x > /work/runs/sst2_hashee_2x.log 2>&1
echo SST2-DONE; date
.venv/bin/hashee-bench -m +sweep=generation method=hashee target_speedup=2 eval.threads=1 logger=none progress_bar=false \
    hydra.sweep.dir=/work/runs/generation_2x > /work/runs/generation_2x.log 2>&1
echo GEN-DONE; date
