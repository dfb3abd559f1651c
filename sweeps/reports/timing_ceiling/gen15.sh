#!/bin/bash
# Generation HashEE 1.5x re-trained at db70a50 through the real command, the only process (first step of the window).
cd /tmp/m_measure
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=offline HASHEE_CACHE=/work/runs/cache
git log --oneline -1; date
.venv/bin/hashee-bench -m +sweep=generation method=hashee target_speedup=1.5 eval.threads=1 logger=none progress_bar=false \
    hydra.sweep.dir=/work/runs/generation_1.5x > /work/runs/generation_1.5x.log 2>&1
echo GEN-DONE rc=$?; date
