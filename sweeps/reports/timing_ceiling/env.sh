# What every script of this folder sets before it measures: the clone of the measured commit, where outputs go, the
# GLUE copies, an offline hub, and the runs' shared cache.
set -u
cd "${CLONE:-/tmp/m_measure}"
OUT=${OUT:-/work/runs/timing_ceiling}
G=/work/shared/data/glue
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false HASHEE_CACHE=/work/runs/cache
git log --oneline -1; uptime
