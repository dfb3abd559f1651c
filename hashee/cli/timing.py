"""``hashee-timing SWEEP_DIR``: time every finished run of a sweep on the same batches, in one process.

    hashee-timing SWEEP_DIR [--out DIR] [--scenarios single,batch32,batch128] [--threads 1,2] [--repeats 5]

Each complete classification run is rebuilt from its recorded ``config`` by the code paths it ran
(:func:`reload_run`): backbone, data, method, ``prepare`` (HashEE's hash: its operating point), its trained weights
and ``calibrate`` on validation (deterministic), then its recorded knob is re-applied (a JSON float is the same
float); it is *verified* when its FLOPs speed-up and primary metric on the reported split equal the recorded ones.
Runs whose reported split has the same tokens form a group, timed on the same batches, interleaved: per repeat the
full model, every run in turn (the order rotated each repeat), the full model again; the fastest pass is kept and
the full model against itself is the noise check (``NOISE_TOLERANCE``, as ``measure_times``). Scenarios: ``single``
(batch 1, latency per example: p50/p95/p99 of the fastest pass) and ``batchN`` (examples per second), each at every
``--threads`` count; on CUDA (when available) timed with CUDA events after a synchronisation.

Each run is a point: quality = its recorded primary metric, time = its time per example (``single``: p50 latency;
``batchN``: seconds per example of the fastest pass), labelled as the report labels it. Who wins at equal quality
and at equal time, and HashEE against each method, are read in :mod:`hashee.reports.timing`. Spreads: min / median
/ max over repeats. Writes ``timing.json`` (paths relative to SWEEP_DIR; the code version in ``meta``),
``timing.md`` and per group and scenario a PNG of quality against time with each method's Pareto frontier.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from hashee.core.allocator import allocator_setting, keep_freed_memory
from hashee.core.backbone import load_backbone
from hashee.core.cost import fastest_call, time_inference
from hashee.experiments.evaluation import NOISE_TOLERANCE, evaluate
from hashee.experiments.steps import build_data, cache_dir, instantiate_method
from hashee.experiments.training import state_dict_mismatch
from hashee.methods.registry import MethodContract, contract_of
from hashee.reports.timing import (PERCENTILES, equal_quality_winners, equal_time_winners, head_to_head, markdown,
                                   pareto_front, plot_entry, verdict)
from hashee.runs.identity import code_version, method_label, requested_target
from hashee.runs.results import RESULTS_FILE, is_complete
from hashee.tasks.kinds import task_kind
from hashee.tasks.metrics import compute_metrics
from hashee.tasks.spec import TaskSpec

DEFAULT_SCENARIOS = "single,batch32,batch128"
Pass = list[float]  # a pass's seconds: one per example (single), or its total alone (batchN)


class Scenario(NamedTuple):
    """``single``: batch 1, latency per example; ``batchN``: batches of N, examples per second."""

    name: str
    batch_size: int
    latency: bool


def parse_scenarios(text: str) -> list[Scenario]:
    """``single,batch32,...`` -> scenarios (a one-line ValueError for anything else)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n != "single" and not (n.startswith("batch") and n[5:].isdigit() and int(n[5:]) > 0)]
    if bad or not names:
        raise ValueError(f"unknown scenario {bad[0] if bad else text!r}: single or batchN (N > 0)")
    return [Scenario(n, 1, True) if n == "single" else Scenario(n, int(n[5:]), False) for n in names]


@dataclass(frozen=True)
class Timer:
    """Seconds of passes over batches: on CPU by ``perf_counter`` (the helpers of :mod:`hashee.core.cost`), on CUDA
    by CUDA events after a synchronisation, read once the last event is done."""

    device: torch.device

    def pass_seconds(self, fn: Callable[[Any], Any], batches: list, warmup: int) -> float:
        """Seconds of ``fn`` over every batch, after ``warmup`` untimed batches (as ``time_inference``)."""
        if self.device.type != "cuda":
            return time_inference(fn, batches, warmup)
        with torch.inference_mode():
            for batch in batches[:warmup]:
                fn(batch)
            return self.cuda_seconds(lambda: [fn(batch) for batch in batches])

    def latencies(self, fn: Callable[[Any], Any], batches: list, warmup: int) -> list[float]:
        """Seconds of each batch (of one example) in turn, after ``warmup`` untimed batches."""
        with torch.inference_mode():
            for batch in batches[:warmup]:
                fn(batch)
            if self.device.type == "cuda":
                return [self.cuda_seconds(lambda b=batch: fn(b)) for batch in batches]
            return [fastest_call(lambda b=batch: fn(b), calls=1, rounds=1) for batch in batches]

    @staticmethod
    def cuda_seconds(work: Callable[[], Any]) -> float:
        """Seconds of ``work`` between two CUDA events, after the queued work is done."""
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        work()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / p99 (linear interpolation), mean and total of per-example latencies, in seconds."""
    values = np.asarray(seconds, dtype=np.float64)
    summary = {f"p{q}_s": float(np.percentile(values, q)) for q in PERCENTILES}
    return {**summary, "mean_s": float(values.mean()), "total_s": float(values.sum())}


def spread(values: Sequence[float]) -> dict[str, float]:
    """min / median / max of repeated measurements."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


@dataclass
class LoadedRun:
    """A finished run rebuilt for timing: its folder (relative to the sweep), its module at the recorded operating
    point, its recorded quality, and its entry of ``timing.json`` (weights, operating point, verification)."""

    run: str
    method: str
    contract: MethodContract
    target: float | None
    quality: float
    module: Any
    record: dict[str, Any]
    label: str = ""


def finished_runs(sweep_dir: Path) -> tuple[list[Path], list[dict[str, str]]]:
    """Folders of the complete classification runs under ``sweep_dir``; the other complete runs, with why."""
    runs, skipped = [], []
    for path in sorted(sweep_dir.rglob(RESULTS_FILE)):
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError:  # being written: not finished
            continue
        if not is_complete(saved):
            continue
        if saved.get("experiment") or task_kind(saved["config"]["task"]) != "classification":
            skipped.append({"run": os.path.relpath(path.parent, sweep_dir), "reason": "not a classification run"})
        else:
            runs.append(path.parent)
    return runs, skipped


def load_weights(module: torch.nn.Module, run_dir: Path, saved: Mapping[str, Any]) -> Path:
    """Load a run's trained weights into ``module`` (checked first) and return their file: the trained-model file it
    reused (``train.reused_from``), else its last stage's best checkpoint (as recorded, or in the run's own
    ``checkpoints/`` when the sweep was moved). Both hold the module's ``state_dict``."""
    train = saved.get("train") or {}
    best = ((train.get("stages") or [{}])[-1]).get("best_checkpoint")
    candidates = ([Path(train["reused_from"])] if train.get("reused_from") else []) + (
        [Path(best), run_dir / "checkpoints" / Path(best).name] if best else [])
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"no trained weights (tried: {', '.join(map(str, candidates)) or 'none recorded'})")
    state = torch.load(path, map_location="cpu", weights_only=True).get("state_dict")
    problem = state_dict_mismatch(module, state)
    if problem:
        raise ValueError(f"{path.name}: {problem}")
    module.load_state_dict(state)
    return path


def operating_point(module: Any, datamodule: Any, cfg: DictConfig, saved: Mapping[str, Any],
                    prepared: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded operating point on ``module``: ``calibrate`` on validation as the run did, then the recorded knob
    re-applied; ``same`` says whether calibration chose it again, ``prepare_same`` whether ``prepare`` (HashEE's hash,
    whose calibration is its operating point) gave the recorded summary."""
    target = cfg.get("target_speedup")
    chosen = module.calibrate(datamodule, None if target is None else float(target))
    info = saved.get("method_info") or {}
    recorded = info.get("operating_point") or {}
    if "value" in recorded:
        module.knob = recorded["value"]
    prepare_same = (json.loads(json.dumps({k: v for k, v in prepared.items() if k != "hash_from_cache"}, default=str))
                    == {k: v for k, v in (info.get("prepare") or {}).items() if k != "hash_from_cache"})
    return {"knob": recorded.get("knob"), "recorded": recorded.get("value"), "recalibrated": chosen.get("value"),
            "same": recorded.get("value") == chosen.get("value"), "prepare_same": prepare_same}


def verify(module: Any, datamodule: Any, spec: TaskSpec, saved: Mapping[str, Any]) -> dict[str, Any]:
    """FLOPs speed-up and primary metric of the reloaded module on the reported split, against the recorded ones."""
    test = evaluate(module, datamodule.eval_batches("test"))
    speedup = test["flops_full"] / test["flops"]
    primary = compute_metrics(spec, test["logits"], test["labels"])[spec.primary_metric]
    recorded = float(saved["cost"]["flops_speedup"])
    # 1e-6: runs recorded before the metrics had one definition (hashee.core.metrics) computed some in float32
    same_primary = primary == saved["primary"] or math.isclose(primary, saved["primary"], rel_tol=1e-6)
    return {"flops_speedup_recorded": recorded, "flops_speedup_reloaded": speedup, "primary_reloaded": primary,
            "verified": math.isclose(speedup, recorded, rel_tol=1e-12) and same_primary}


def portable_weights(path: Path, sweep_dir: Path) -> str:
    """Where a run's weights came from, without machine paths: relative to the sweep when inside it, else the
    trained-model cache's file (``<cache>/trained/<file>``)."""
    inside = path.resolve().is_relative_to(sweep_dir.resolve())
    return os.path.relpath(path, sweep_dir) if inside else f"<cache>/{path.parent.name}/{path.name}"


def reload_run(run_dir: Path, sweep_dir: Path) -> tuple[LoadedRun, Any, str]:
    """A finished run rebuilt from its ``results.json``; its data module and the key of its reported split's tokens."""
    saved = json.loads((run_dir / RESULTS_FILE).read_text())
    cfg = OmegaConf.create(saved["config"])
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)  # as the run did (random init, prepare)
    spec = TaskSpec.from_config(cfg.task)
    backbone = load_backbone(cfg.backbone)
    datamodule = build_data(cfg, spec, backbone.tokenizer, backbone.source)
    module = instantiate_method(cfg.method, spec=spec, backbone=backbone, optim=cfg.optim)
    prepared = module.prepare(datamodule, cache_dir(cfg))
    path = load_weights(module, run_dir, saved)
    module.eval()
    record = {"weights": portable_weights(path, sweep_dir), "primary_metric": saved["primary_metric"],
              "operating_point": operating_point(module, datamodule, cfg, saved, prepared)}
    record.update(verify(module, datamodule, spec, saved))
    contract = contract_of(saved["method"], saved.get("method_contract"))
    target = requested_target(contract, saved["config"])  # None for the full model
    label = method_label(contract, saved["config"])  # as the report labels it: hashee[frequency; depth=4]
    loaded = LoadedRun(os.path.relpath(run_dir, sweep_dir), saved["method"], contract, target,
                       float(saved["primary"]), module, record, label if target is None else f"{label}@{target:g}x")
    tokens = json.dumps([cfg.task.name, str(cfg.backbone.path), datamodule.token_ids("test")])
    return loaded, datamodule, f"{cfg.task.name}-{hashlib.sha1(tokens.encode()).hexdigest()[:8]}"


def summarise(passes: list[Pass], scenario: Scenario, examples: int) -> dict[str, Any]:
    """The fastest pass of a function and the spread over repeats: latencies or examples per second."""
    fastest = min(passes, key=sum)
    if scenario.latency:
        each = [latency_summary(p) for p in passes]
        summary = latency_summary(fastest)
        return {**summary, "time_s": summary["p50_s"], "time_spread": spread([e["p50_s"] for e in each]),
                **{f"p{q}_spread": spread([e[f"p{q}_s"] for e in each]) for q in PERCENTILES[1:]}}
    per_example = [sum(p) / examples for p in passes]
    return {"seconds": sum(fastest), "examples_per_s": examples / sum(fastest), "time_s": sum(fastest) / examples,
            "time_spread": spread(per_example), "examples_per_s_spread": spread([1 / t for t in per_example])}


def time_scenario(runs: list[LoadedRun], reference: Callable[[Any], Any], batches: list, scenario: Scenario,
                  repeats: int, warmup: int, timer: Timer) -> dict[str, Any]:
    """Every run of a group on one scenario's batches, interleaved: per repeat the full model (``reference``), every
    run in turn (the order rotated by one each repeat), the full model again. A point per run, the noise check, both
    verdicts and each method's Pareto frontier."""
    def measure(fn: Callable[[Any], Any]) -> Pass:
        return timer.latencies(fn, batches, warmup) if scenario.latency else [timer.pass_seconds(fn, batches, warmup)]

    passes: dict[str, list[Pass]] = {name: [] for name in [*(run.label for run in runs), "full_before", "full_after"]}
    for repeat in range(max(1, repeats)):
        passes["full_before"].append(measure(reference))
        for run in runs[repeat % len(runs):] + runs[:repeat % len(runs)]:
            passes[run.label].append(measure(run.module.predict))
        passes["full_after"].append(measure(reference))
    examples = sum(int(b["input_ids"].shape[0]) for b in batches)
    full = summarise(passes["full_before"] + passes["full_after"], scenario, examples)
    noise = min(map(sum, passes["full_before"])) / min(map(sum, passes["full_after"]))
    points = [{"run": run.run, "label": run.label, "method": run.method, "focal": run.contract.focal,
               "target": run.target, "quality": run.quality,
               "flops_speedup": run.record["flops_speedup_reloaded"], "verified": run.record["verified"],
               **summarise(passes[run.label], scenario, examples)} for run in runs]
    for point in points:
        point["speedup_vs_full"] = full["time_s"] / point["time_s"]
    methods = sorted({p["method"] for p in points})
    return {"scenario": scenario.name, "batch_size": scenario.batch_size, "latency": scenario.latency,
            "examples": examples, "repeats": max(1, repeats), "full": full, "noise_check": noise,
            "noise_flagged": abs(noise - 1.0) > NOISE_TOLERANCE, "points": points,
            "fastest_at_equal_quality": verdict(points, equal_quality_winners(points)),
            "best_at_equal_time": verdict(points, equal_time_winners(points)),
            "head_to_head": head_to_head(points),
            "pareto": {m: [p["label"] for p in pareto_front([q for q in points if q["method"] == m])] for m in methods}}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command's options (a bad ``--scenarios`` or ``--threads`` is refused before anything loads)."""
    parser = argparse.ArgumentParser(prog="hashee-timing", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: SWEEP_DIR/timing)")
    parser.add_argument("--scenarios", type=parse_scenarios, default=DEFAULT_SCENARIOS,
                        help="single (batch 1 latency) and/or batchN (examples per second)")
    parser.add_argument("--threads", type=lambda text: [int(t) for t in text.split(",")], default="1,2",
                        help="torch thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches before every pass")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available")
    return parser.parse_args(argv)


def load_groups(sweep_dir: Path) -> tuple[dict[str, tuple[list[LoadedRun], Any]], list[dict[str, str]]]:
    """Every finished run reloaded, grouped by the tokens of its reported split (with one data module per group)."""
    runs, skipped = finished_runs(sweep_dir)
    groups: dict[str, tuple[list[LoadedRun], Any]] = {}
    for run_dir in runs:
        try:
            loaded, datamodule, key = reload_run(run_dir, sweep_dir)
        except (FileNotFoundError, ValueError) as exc:
            reason = str(exc).replace(str(sweep_dir), ".")
            skipped.append({"run": os.path.relpath(run_dir, sweep_dir), "reason": reason})
            continue
        if not loaded.record["verified"]:
            print(f"warning: {loaded.run}: reloaded FLOPs speed-up or quality differs from the recorded one")
        groups.setdefault(key, ([], datamodule))[0].append(loaded)
    for members, _ in groups.values():  # ``#n`` added to a label that two runs would share
        labels = [m.label for m in members]
        for n, member in enumerate(members):
            member.label += f"#{n}" if labels.count(member.label) > 1 else ""
    tasks = [key.rsplit("-", 1)[0] for key in groups]  # a group is named by its task where that is unambiguous
    return {(t if tasks.count(t) == 1 else key): group for t, (key, group) in zip(tasks, groups.items())}, skipped


def time_groups(groups: Mapping[str, tuple[list[LoadedRun], Any]], args: argparse.Namespace, device: torch.device,
                out: Path) -> list[dict[str, Any]]:
    """Every group on every scenario at every thread count; a plot per entry."""
    timer, entries = Timer(device), []
    for key, (runs, datamodule) in groups.items():
        for run in runs:
            run.module.to(device)
        # the full model of the noise check: the group's full run, else the first run's own full path
        reference = next((run for run in runs if run.contract.full_model), runs[0]).module.full_logits
        for scenario in args.scenarios:
            batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
                       for batch in datamodule.eval_batches("test", batch_size=scenario.batch_size)]
            for threads in args.threads:
                torch.set_num_threads(threads)
                entry = {"group": key, "threads": torch.get_num_threads(), "device": device.type,
                         **time_scenario(runs, reference, batches, scenario, args.repeats, args.warmup, timer)}
                entry["plot"] = plot_entry(entry, runs[0].record["primary_metric"],
                                           out / f"{key}_{scenario.name}_t{threads}.png")
                entries.append(entry)
                print(f"{key} {scenario.name} t{threads}: fastest at equal quality "
                      f"{entry['fastest_at_equal_quality']['text']}", flush=True)
    return entries


def run(argv: list[str]) -> dict[str, Any]:
    """Reload, time, compare; write ``timing.json`` and ``timing.md``; return the record."""
    args = parse_args(argv)
    sweep_dir = args.sweep_dir.resolve()
    out = (args.out or sweep_dir / "timing").resolve()
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu")
    keep_freed_memory()  # as the runs timed themselves (eval.keep_freed_memory)
    threads_before = torch.get_num_threads()
    groups, skipped = load_groups(sweep_dir)
    try:
        entries = time_groups(groups, args, device, out)
    finally:
        torch.set_num_threads(threads_before)
    runs = [{"run": r.run, "label": r.label, "group": key, "method": r.method, "target": r.target,
             "quality": r.quality, **r.record} for key, (members, _) in groups.items() for r in members]
    meta = {"code": code_version(), "device": device.type, "torch": torch.__version__, "allocator": allocator_setting(),
            "repeats": max(1, args.repeats), "warmup": args.warmup, "threads": args.threads,
            "scenarios": [s.name for s in args.scenarios], "noise_tolerance": NOISE_TOLERANCE}
    record = {"sweep": sweep_dir.name, "meta": meta, "runs": runs, "skipped": skipped, "scenarios": entries}
    (out / "timing.json").write_text(json.dumps(record, indent=1))
    (out / "timing.md").write_text(markdown(record))
    print(f"timing: {out / 'timing.md'} ({len(runs)} runs, {len(entries)} scenarios)")
    return record


def main(argv: list[str] | None = None) -> int:
    """The console script: exit status 0 when at least one run was timed, 1 when none could be."""
    record = run(list(sys.argv[1:] if argv is None else argv))
    return 0 if record["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
