"""What a study of ``experiment=difficulty_model`` runs says about the paper's claim (a), "models predict instance
difficulty poorly" (docs/methods.md section 5), per task, from the committed per-example outputs.

Each run (one seed) leaves ``difficulty.npz``: on its predictor-test examples, the target vector of every
example and every predictor's 0/1 prediction of it. A predictor's score per example is the share of layers it
gets right (its mean is the mean per-layer accuracy). Each learned predictor is compared with each trivial one
(majority, length, the full model's confidence): the per-example difference, pooled over seeds by a two-level
bootstrap (seeds, then each seed's examples; :func:`hashee.core.stats.seeds_and_examples_interval`). Every seed
draws its own predictor-test examples, so pairs never cross seeds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from hashee.core.stats import MeanInterval, seeds_and_examples_interval
from hashee.runs.results import DIFFICULTY_FILE, is_complete

EXPERIMENT = "difficulty_model"


def difficulty_runs(study: Path) -> list[dict[str, Any]]:
    """The complete model-defined-difficulty runs under ``study`` (their results.json, run_dir set to the folder)."""
    runs = []
    for path in sorted(Path(study).rglob("results.json")):
        results = json.loads(path.read_text())
        if results.get("experiment") == EXPERIMENT and is_complete(results):
            runs.append({**results, "run_dir": str(path.parent)})
    return runs


def is_study(study: Path) -> bool:
    """Whether ``study`` is a folder that holds difficulty runs."""
    return Path(study).is_dir() and bool(difficulty_runs(study))


def per_example_outputs(run: dict[str, Any]) -> dict[str, np.ndarray]:
    """A run's ``difficulty.npz``, read once."""
    with np.load(Path(run["run_dir"]) / DIFFICULTY_FILE) as outputs:
        return {key: outputs[key] for key in outputs.files}


def agreement(outputs: dict[str, np.ndarray], predictors: list[str], excluded: list[int]) -> dict[str, np.ndarray]:
    """Per predictor, the share of layers it predicts right on each predictor-test example of one run, over the
    layers not ``excluded`` (1-based); empty arrays when every layer is."""
    target = outputs["target"]
    kept = [layer for layer in range(target.shape[1]) if layer + 1 not in excluded]
    return {name: (outputs[f"pred_{name}"][:, kept] == target[:, kept]).mean(axis=1) if kept else np.zeros(0)
            for name in predictors}


def trivial_predictors(run: dict[str, Any], names: list[str]) -> list[str]:
    """The predictors the run compared the learned ones with (its ``against_trivial`` rows), in its order."""
    named = {row["trivial"] for row in run["against_trivial"]}
    return [n for n in names if n in named]


def one_class_layers(outputs: dict[str, np.ndarray]) -> list[int]:
    """The 1-based layers whose head predicts one class for every predictor-test example of a run (its
    correctness is then the label itself: ``correct == (label == k)`` for one class ``k``)."""
    correct, label = outputs["correct"].astype(bool), outputs["label"]
    return [layer + 1 for layer in range(correct.shape[1])
            if any(np.array_equal(correct[:, layer], label == k) for k in np.unique(label))]


def verdict(interval: MeanInterval) -> str:
    if interval.low > 0:
        return "learned better"
    if interval.high < 0:
        return "learned worse"
    return "tie"


def task_tables(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task: the seeds, each predictor's mean per-layer accuracy and exit-layer exact share (mean over seeds),
    the share of examples at each model-defined difficulty, and every learned-minus-trivial comparison. Layers whose
    head predicts one class for every example (:func:`one_class_layers`) are left out of the scores: their labels
    are the class, not a difficulty."""
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_task[run["task"]].append(run)
    tables = {}
    for task, task_runs in sorted(by_task.items()):
        task_runs.sort(key=lambda r: r["seed"])
        outputs = [per_example_outputs(run) for run in task_runs]
        one_class = {run["seed"]: found for run, out in zip(task_runs, outputs) if (found := one_class_layers(out))}
        scores = [agreement(out, list(run["predictors"]), one_class.get(run["seed"], []))
                  for run, out in zip(task_runs, outputs)]
        scores = [s for s in scores if all(len(v) for v in s.values())]  # seeds with a layer left to score
        names = [n for n in task_runs[0]["predictors"] if scores and all(n in s for s in scores)]
        trivial = trivial_predictors(task_runs[0], names)
        learned = [n for n in names if n not in trivial]
        histogram = np.sum([run["difficulty_histogram"] for run in task_runs], axis=0)
        tables[task] = {
            "seeds": [run["seed"] for run in task_runs], "primary": task_runs[0]["primary_predictor"], "trivial": trivial,
            "examples": [int(run["splits"]["predictor_test"]) for run in task_runs],
            "accuracy": {n: float(np.mean([s[n].mean() for s in scores])) for n in names},
            "exit_exact": {n: float(np.mean([run["predictors"][n]["exit_layer"]["exact"] for run in task_runs]))
                           for n in names},
            "difficulty_share": (histogram / histogram.sum()).tolist(), "one_class": one_class,
            "comparisons": [{"learned": a, "trivial": b,
                             "interval": seeds_and_examples_interval([s[a] - s[b] for s in scores])}
                            for a in learned for b in trivial],
        }
    return tables


def _points(value: float) -> str:
    return f"{100 * value:+.2f}"


def claim_line(task: str, table: dict[str, Any]) -> str:
    """One sentence per task: does the predictor named before the runs beat every trivial one at 95 %? (Claim (a)
    holds on the task when it does not.)"""
    primary = table["primary"]
    rows = [c for c in table["comparisons"] if c["learned"] == primary]
    groups = {"beats": [c["trivial"] for c in rows if c["interval"].low > 0],
              "loses to": [c["trivial"] for c in rows if c["interval"].high < 0]}
    groups["ties"] = [c["trivial"] for c in rows if c["trivial"] not in groups["beats"] + groups["loses to"]]
    against = "; ".join(f"{verb} {', '.join(names)}" for verb, names in groups.items() if names)
    seeds = len(table["seeds"])
    head = f"- {task} ({seeds} seed{'s' if seeds != 1 else ''}): "
    flagged = "; ".join(f"seed {seed}: layer{'s' if len(layers) > 1 else ''} {', '.join(map(str, layers))}"
                        for seed, layers in table["one_class"].items())
    if not rows:
        return (f"{head}**not testable**: the multi-exit model's heads predict one class for every example at every "
                f"layer ({flagged}): its difficulty labels are the class.")
    note = (f" Left out: layers whose head predicts one class for every example ({flagged}), whose labels are the "
            "class, not a difficulty." if flagged else "")
    if len(groups["beats"]) == len(rows):
        return (f"{head}the learned {primary} predictor beats every trivial predictor at 95 % ({against}): claim (a) "
                f"does **not** hold here.{note}")
    return f"{head}the learned {primary} predictor does not beat every trivial predictor ({against}): claim (a) holds here.{note}"


def claim_lines(tables: dict[str, dict[str, Any]]) -> list[str]:
    """The answer to claim (a), one line per task."""
    return ["Claim (a), \"models predict instance difficulty poorly\", per task: the learned predictor named before the "
            "runs against each trivial one (mean per-layer accuracy on predictor-test, learned minus trivial, 95 % over "
            "seeds and examples).", "", *(claim_line(task, table) for task, table in tables.items())]


def claim_markdown(study: Path) -> str:
    """Only the claim lines (the README's)."""
    return "\n".join(claim_lines(task_tables(difficulty_runs(study)))) + "\n"


def markdown(study: Path) -> str:
    """The study's tables: per task, the predictors' scores and each learned-minus-trivial difference."""
    tables = task_tables(difficulty_runs(study))
    lines = claim_lines(tables)
    for task, table in tables.items():
        names = list(table["accuracy"])
        shares = " / ".join(f"{100 * s:.0f}" for s in table["difficulty_share"])
        lines += ["", f"**{task}**: seeds {', '.join(map(str, table['seeds']))}; predictor-test examples per seed "
                  f"{', '.join(map(str, table['examples']))}; share of examples (%) whose prediction stays correct from "
                  f"layer 1 / 2 / ... / never: {shares}", "",
                  "| predictor | kind | mean per-layer accuracy | exit layer exact |", "|---|---|---:|---:|"]
        lines += [f"| {n} | {'trivial' if n in table['trivial'] else 'learned'} | {table['accuracy'][n]:.4f} | "
                  f"{table['exit_exact'][n]:.4f} |" for n in names]
        lines += ["", "| learned | trivial | learned minus trivial, points [95 %] | verdict |", "|---|---|---|---|"]
        for c in table["comparisons"]:
            i = c["interval"]
            lines.append(f"| {c['learned']} | {c['trivial']} | {_points(i.mean)} [{_points(i.low)}, {_points(i.high)}] "
                         f"| {verdict(i)} |")
    return "\n".join(lines) + "\n"
