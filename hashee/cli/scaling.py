"""How cost grows with batch size and input length: the full model and HashEE against the stock forward.

    hashee-scaling data.glue_dir=../shared/data/glue [--inputs sst2,rotten_tomatoes,mrpc,bbc_news@128,bbc_news@512]
                   [--batch-sizes 1,8,32,128] [--targets 1.5,2,3] [--tokens 12000] [--repeats 3] [--out DIR]

On one set of weights (the backbone's pretrained encoder; heads untrained: timing does not depend on
their values) and in one process, for every input and batch size, times interleaved over the same
batches of the reported split: ``hf`` (the stock ``transformers`` forward + pooler), ``full`` (this
project's encoder, every token to the last layer, and its head), ``hashee_full_depth`` (HashEE's own path
with every token sent to the last layer) and HashEE (frequency hash built from
the task's training split) at each target. Per cell it keeps the fastest of ``--repeats`` passes and the
spread (slowest / fastest). Efficiency = (full time / HashEE time) / FLOPs speed-up, from the fastest passes;
``efficiency_paired`` is the median over repeats of the same ratio taken within one repeat (passes run back
to back share the machine's state). As a noise check the full model is timed a second time in every repeat
(``full_again``); ``noise_check`` = its fastest pass / the first one's, flagged when off by more than 5 %.
Per input, the full model's *fixed cost* per batch (time that does not grow with tokens: on CPU, every layer's
weights read from memory once per batch; :func:`hashee.core.cost.fixed_batch_cost` on sub-batches of up to 1,024
tokens of the median batch of the largest batch size) gives each HashEE cell its ``ceiling``: the efficiency of a
method that pays that cost once per batch for the layers it runs (HashEE's calibrated depth D of the L layers:
D / L of it) and everything else in proportion to its FLOPs.
Each input uses the same examples at every batch size: the first ``max(largest batch, tokens / mean length)`` of
the split.
Writes ``scaling.json``, ``scaling.md`` and two plots (efficiency against batch size, and against length).

``--profile``: after each cell, one more pass of the full model and of HashEE at every target under
``torch.profiler`` (CPU): each operator's self time and calls, their total, and the unprofiled fastest pass of the
cell beside it (what the operators do not account for is time outside them: Python, dispatch, planning). Writes
``profile.json``; ``hashee-report`` renders it (:func:`hashee.reports.scaling.profile_markdown`). Profile on a quiet
machine: memory-bound operators slow down most when other processes share the cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from hashee.core.allocator import allocator_setting, keep_freed_memory
from hashee.core.backbone import load_backbone
from hashee.core.cost import efficiency_ceiling, fixed_batch_cost, time_inference
from hashee.experiments.evaluation import NOISE_TOLERANCE  # the runs' own noise-check threshold
from hashee.experiments.steps import build_data, cache_dir, instantiate_method
from hashee.reports.scaling import markdown
from hashee.runs.identity import code_version
from hashee.tasks.spec import TaskSpec

DEFAULT_INPUTS = "sst2,rotten_tomatoes,mrpc,bbc_news@128,bbc_news@512"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Options of this command; everything else is a Hydra override (``data.glue_dir=...``, ``backbone=...``)."""
    parser = argparse.ArgumentParser(prog="hashee-scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", default=DEFAULT_INPUTS, help="task[@max_length], comma-separated")
    parser.add_argument("--batch-sizes", default="1,8,32,128")
    parser.add_argument("--targets", default="1.5,2,3")
    parser.add_argument("--tokens", type=int, default=12000, help="real tokens per input (at least one largest batch)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--allocator", choices=("keep_freed_memory", "default"), default="keep_freed_memory",
                        help="glibc malloc as hashee-bench runs it (hashee/core/allocator.py), or untouched")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one pass of the full model and of each HashEE target per cell (profile.json)")
    parser.add_argument("--out", default="outputs/scaling")
    return parser.parse_known_args(argv)


def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose, initialize_config_module

    with initialize_config_module(config_module="hashee_conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def split_input(name: str) -> tuple[str, int]:
    task, _, length = name.partition("@")
    return task, int(length or 128)


def examples_for(datamodule: Any, tokens: int, largest_batch: int) -> int:
    """How many examples of the reported split an input uses: enough for ``tokens`` real tokens and one largest batch."""
    lengths = datamodule.lengths("test")
    mean = sum(lengths) / max(1, len(lengths))
    return min(len(lengths), max(largest_batch, int(tokens / mean)))


def build_input(name: str, overrides: list[str], args: argparse.Namespace, largest_batch: int) -> dict[str, Any]:
    """Data, backbone and one HashEE module per target (sharing the backbone's weights) for one input."""
    task, length = split_input(name)
    base = [f"task={task}", f"data.max_length={length}", "logger=none", "progress_bar=false", *overrides]
    cfg = compose(base)
    spec = TaskSpec.from_config(cfg.task)
    backbone = load_backbone(cfg.backbone)
    probe = build_data(cfg, spec, backbone.tokenizer, backbone.source)
    count = examples_for(probe, args.tokens, largest_batch)
    cfg = compose([*base, f"data.test_limit={count}"])
    datamodule = build_data(cfg, spec, backbone.tokenizer, backbone.source)
    modules = {}
    for target in args.targets.split(","):
        method_cfg = compose([*base, "method=hashee", f"target_speedup={target}"])
        module = instantiate_method(method_cfg.method, spec=spec, backbone=backbone, optim=method_cfg.optim)
        module.prepare(datamodule, cache_dir(method_cfg))
        modules[target] = module.eval()
    return {"name": name, "task": task, "max_length": length, "backbone": backbone, "datamodule": datamodule,
            "modules": modules, "examples": count}


def measure_fixed_cost(data: dict[str, Any], largest_batch: int) -> dict[str, Any]:
    """The full model's fixed cost per batch for one input, from the rows of its median batch of the largest size."""
    batches = data["datamodule"].eval_batches("test", batch_size=largest_batch)
    reference = next(iter(data["modules"].values()))
    return fixed_batch_cost(reference.full_logits, batches[len(batches) // 2])


def cell_functions(data: dict[str, Any]) -> dict[str, Callable[[Any], Any]]:
    """The functions a profile covers: the full model and HashEE at every target."""
    reference = next(iter(data["modules"].values()))
    return {"full": reference.full_logits, **{f"hashee@{t}": m.predict for t, m in data["modules"].items()}}


PROFILE_SHARE = 0.001  # operators below this share of a pass's self time are summed into one "(other operators)" line


def condense(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Operators by self time, those under :data:`PROFILE_SHARE` of the total summed into one line (kept last)."""
    total = sum(op["self_s"] for op in ops)
    ordered = sorted(ops, key=lambda op: -op["self_s"])
    kept = [op for op in ordered if op["self_s"] >= PROFILE_SHARE * total]
    rest = [op for op in ordered if op["self_s"] < PROFILE_SHARE * total]
    other = [{"op": "(other operators)", "calls": sum(op["calls"] for op in rest),
              "self_s": sum(op["self_s"] for op in rest)}] if rest else []
    return kept + other


def profile_cell(data: dict[str, Any], batch_size: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One profiled pass per function of :func:`cell_functions` over the cell's batches (after a warm-up pass):
    operators by self time, their total, the profiled pass's own wall time (so that wall minus operators is the
    time outside them, both under the profiler) and the cell's unprofiled fastest pass (``rows``)."""
    from torch.profiler import ProfilerActivity, profile

    batches = data["datamodule"].eval_batches("test", batch_size=batch_size)
    fastest = {r["method"]: r["seconds"] for r in rows if r["input"] == data["name"] and r["batch_size"] == batch_size}
    profiles = []
    for name, fn in cell_functions(data).items():
        for batch in batches:  # warm-up: the profiled pass starts from the same state as a timed one
            fn(batch)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for batch in batches:
                fn(batch)
            profiled_wall = time.perf_counter() - start
        ops = condense([{"op": e.key, "calls": e.count, "self_s": e.self_cpu_time_total / 1e6}
                        for e in prof.key_averages()])
        profiles.append({"input": data["name"], "batch_size": batch_size, "method": name,
                         "wall_s": fastest[name], "profiled_wall_s": profiled_wall, "batches": len(batches),
                         "self_s": sum(op["self_s"] for op in ops), "ops": ops})
    return profiles


def time_interleaved(fns: dict[str, Callable[[Any], Any]], batches: list, repeats: int) -> dict[str, list[float]]:
    """Seconds of each function over all batches, interleaved, ``repeats`` times (after one warm-up batch)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            times[name].append(time_inference(fn, batches, warmup=1))
    return times


def measure_cell(data: dict[str, Any], batch_size: int, repeats: int) -> list[dict[str, Any]]:
    """Rows of one (input, batch size) cell: hf, full and HashEE at every target."""
    batches = data["datamodule"].eval_batches("test", batch_size=batch_size)
    model = data["backbone"].model.eval()
    reference = next(iter(data["modules"].values()))

    def hf(batch: dict) -> torch.Tensor:
        extra = {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra).pooler_output

    def hashee_full_depth(batch: dict) -> torch.Tensor:
        """HashEE's own path (hash lookup, token-exit encoder) with every real token sent to the last layer."""
        exits = reference.exit_layers(batch)
        return reference(batch, torch.where(batch["attention_mask"].bool(), reference.depth, 0).to(exits.dtype))

    fns = {"hf": hf, "full": reference.full_logits, "hashee_full_depth": hashee_full_depth}
    fns.update({f"hashee@{t}": module.predict for t, module in data["modules"].items()})
    fns["full_again"] = reference.full_logits  # the noise check: the same function, timed again
    times = time_interleaved(fns, batches, repeats)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    full_flops = sum(float(reference.full_flops(b).sum()) for b in batches)
    best = {name: min(values) for name, values in times.items()}
    noise = best["full_again"] / best["full"]
    fixed = min(max(data["fixed_cost"]["fixed_s"], 0.0) * len(batches), best["full"])  # a noisy intercept can be < 0
    rows = []
    for name, values in times.items():
        row = {"input": data["name"], "batch_size": batch_size, "examples": data["examples"], "tokens": tokens,
               "mean_length": tokens / data["examples"], "method": name, "seconds": best[name],
               "all_seconds": values, "spread": max(values) / min(values),
               "examples_per_s": data["examples"] / best[name], "over_hf": best[name] / best["hf"],
               "over_hf_paired": statistics.median(v / h for v, h in zip(values, times["hf"])),
               "noise_check": noise, "noise_flagged": abs(noise - 1.0) > NOISE_TOLERANCE,
               "fixed_s_per_batch": data["fixed_cost"]["fixed_s"], "fixed_share_of_full": fixed / best["full"]}
        if name.startswith("hashee@"):
            module = data["modules"][name.split("@")[1]]
            flops_speedup = full_flops / sum(float(module.batch_flops(b).sum()) for b in batches)
            measured = best["full"] / best[name]
            paired = statistics.median(f / h for f, h in zip(times["full"], values)) / flops_speedup
            row.update(target=float(name.split("@")[1]), flops_speedup=flops_speedup, measured_speedup=measured,
                       efficiency=measured / flops_speedup, efficiency_paired=paired,
                       layers_run=module.depth, num_layers=module.encoder.num_layers,  # its calibrated depth D of L
                       ceiling=efficiency_ceiling(best["full"], fixed, flops_speedup, module.depth,
                                                  module.encoder.num_layers))
        rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], out: Path) -> list[str]:
    """Efficiency against batch size (one line per input and target, its ceiling dotted in the same colour) and
    against mean length (batch 32)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hashee = [r for r in rows if "efficiency" in r]
    names = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in sorted({(r["input"], r["target"]) for r in hashee}):
        cells = sorted((r["batch_size"], r["efficiency"], r["ceiling"]) for r in hashee if (r["input"], r["target"]) == key)
        line, = ax.plot([c[0] for c in cells], [c[1] for c in cells], marker="o", label=f"{key[0]} {key[1]:g}x")
        ax.plot([c[0] for c in cells], [c[2] for c in cells], linestyle=":", color=line.get_color(), linewidth=0.9)
    ax.set(xscale="log", xlabel="batch size", ylabel="efficiency (measured / FLOPs speed-up)",
           title="dotted: ceiling set by the full model's fixed cost per batch")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
    ax.legend(fontsize=6, ncol=3)
    fig.tight_layout(); fig.savefig(out / "efficiency_vs_batch.png", dpi=120); plt.close(fig)
    names.append("efficiency_vs_batch.png")
    fig, ax = plt.subplots(figsize=(7, 4))
    for target in sorted({r["target"] for r in hashee}):
        points = sorted((r["mean_length"], r["efficiency"]) for r in hashee if r["target"] == target and r["batch_size"] == 32)
        if points:
            ax.plot(*zip(*points), marker="o", label=f"HashEE {target:g}x (batch 32)")
    ax.set(xscale="log", xlabel="mean real length (tokens)", ylabel="efficiency (measured / FLOPs speed-up)")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
    ax.legend(fontsize=7)
    fig.tight_layout(); fig.savefig(out / "efficiency_vs_length.png", dpi=120); plt.close(fig)
    names.append("efficiency_vs_length.png")
    return names


def run(argv: list[str]) -> list[dict[str, Any]]:
    """Measure every cell, write the files, and return the rows."""
    args, overrides = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.allocator == "keep_freed_memory":
        keep_freed_memory()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    meta = {"threads": torch.get_num_threads(), "allocator": allocator_setting(), "repeats": args.repeats, "tokens": args.tokens,
            "torch": torch.__version__, "overrides": overrides, "code": code_version()}
    for name in args.inputs.split(","):
        data = build_input(name, overrides, args, max(batch_sizes))  # outside inference mode: normal parameters
        data["fixed_cost"] = measure_fixed_cost(data, max(batch_sizes))
        meta.setdefault("fixed_cost", {})[name] = data["fixed_cost"]
        for batch_size in batch_sizes:
            with torch.inference_mode():
                rows += measure_cell(data, batch_size, args.repeats)
                if args.profile:
                    profiles += profile_cell(data, batch_size, rows)
                    (out / "profile.json").write_text(json.dumps({"meta": meta, "profiles": profiles}, indent=1))
            # written after every cell: an interrupted run keeps what it measured
            (out / "scaling.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
            (out / "scaling.md").write_text(markdown(rows))
            print(markdown(rows).splitlines()[-1], flush=True)
    plot(rows, out)
    print(markdown(rows))
    return rows


def main(argv: list[str] | None = None) -> None:
    """The console script: exit status 0 when every cell is measured (a console script exits 1 on a returned list)."""
    run(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
