"""Write conf/recipes/tuned/minilm/<task>/<method>.yaml from the committed tuning studies (section 0c of
BENCHMARKS.md), with the command each study ran; the same function `+sweep=tune` calls at its end.

    python3 sweeps/reports/tune/write_recipes.py
"""
from pathlib import Path

from hashee.runs.recipe import write_tuned_recipe

HERE = Path(__file__).parent
C = "hashee-bench -m data.glue_dir=$G logger=none progress_bar=false +sweep=tune seed=0"
STUDIES = {  # study folder: (task, method, the command's own overrides, the date the study ran)
    "mrpc_full": ("mrpc", "full", "task=mrpc method=full eval.threads=1 hydra.sweeper.n_trials=4", "2026-12-01"),
    "mrpc_pabee": ("mrpc", "pabee", "task=mrpc method=pabee target_speedup=2 eval.threads=1 hydra.sweeper.n_trials=4 "
                                    "(stopped after 3 trials for the session's time)", "2026-12-01"),
    "stsb_full": ("stsb", "full", "task=stsb method=full eval.threads=1 hydra.sweeper.n_trials=3", "2026-12-01"),
    "sst2_full": ("sst2", "full", "task=sst2 data.train_limit=8000 method=full eval.threads=1 hydra.sweeper.n_trials=3 "
                                  "(at f466bad: plain TPE, no default trial 0)", "2026-12-01"),
    "sst2_hashee": ("sst2", "hashee", "task=sst2 data.train_limit=8000 method=hashee target_speedup=2 eval.threads=1 "
                                      "hydra.sweeper.n_trials=4 (at dbfa8a5)", "2026-12-02"),
    "mrpc_hashee": ("mrpc", "hashee", "task=mrpc method=hashee target_speedup=2 eval.threads=1 hydra.sweeper.n_trials=6 "
                                      "(at dbfa8a5: 3 trials, then resumed to 6)", "2026-12-02"),
    "sst2_pabee": ("sst2", "pabee", "task=sst2 data.train_limit=8000 method=pabee target_speedup=2 eval.threads=1 "
                                    "hydra.sweeper.n_trials=5 (at dbfa8a5: 2 trials, then resumed to 5)", "2026-12-02"),
}
for study, (task, method, args, date) in STUDIES.items():
    if (HERE / study).is_dir():
        path = write_tuned_recipe(HERE / study, {"backbone": "minilm", "task": task, "method": method},
                                  f"{C} {args}", str(HERE.parents[2] / "conf" / "recipes" / "tuned"), date)
        print(study, "->", path)
