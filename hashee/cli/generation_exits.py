"""``hashee-generation-exits SWEEP_DIR``: where a trained HashEE encoder-decoder loses its quality.

    hashee-generation-exits SWEEP_DIR [--out results/generation/exits.json]

For every complete HashEE generation run of a sweep, with the full model's run of the same task and seed, two
measurements on the trained weights (nothing is trained; :func:`hashee.experiments.generation.load_finished_run`):

- **Exits switched off after training** (reported split, greedy, ROUGE of the task's primary metric and FLOPs
  speed-up): the hashes in both stacks (the run as recorded: verified against its record), in the encoder only, in
  the decoder only, and in neither. If the loss came from the inference path (e.g. the LM head reading a token's
  shallow frozen state), running that stack in full would recover it.
- **Teacher-forced loss by decoder exit layer** (validation split): the cross-entropy of each target position,
  grouped by the exit layer HashEE's decoder hash gives the position's input token, for the HashEE model and for
  the full model on the same positions. A loss confined to positions whose input token exits early points at the
  decoder's exits; a loss at every layer points at what every position shares (the encoder's output).

Writes one JSON record (``kind: generation_exits``; run folders relative to SWEEP_DIR, the code version in
``meta``); ``hashee-report --docs`` renders it (:func:`hashee.reports.generation.exits_markdown`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F

from hashee.data.seq2seq import IGNORE_INDEX
from hashee.experiments.generation import load_finished_run
from hashee.methods.seq2seq_full import Seq2SeqModule
from hashee.runs.identity import code_version
from hashee.runs.results import RESULTS_FILE, is_complete
from hashee.seq2seq.generation import generate
from hashee.tasks.rouge import rouge_scores

KIND = "generation_exits"
STACKS = {"both": (True, True), "encoder only": (True, False), "decoder only": (False, True), "neither": (False, False)}


def generate_with_stacks(module: Seq2SeqModule, batches: Iterable[Mapping[str, torch.Tensor]], encoder: bool,
                         decoder: bool) -> tuple[list[str], float]:
    """Greedy texts (dataset order) and FLOPs speed-up with the method's exits kept only in the named stacks."""
    settings, full_depths = module.generation, (module.net.encoder_layers, module.net.decoder_layers)
    texts: dict[int, str] = {}
    flops = flops_full = 0.0
    with torch.inference_mode():
        for batch in batches:
            depths = (module.depths[0] if encoder else full_depths[0], module.depths[1] if decoder else full_depths[1])
            out = generate(module.net, module.cost, batch, module.source_exits(batch) if encoder else None,
                           module.target_layers() if decoder else None, depths, int(settings["max_new_tokens"]),
                           int(settings.get("num_beams", 1)), float(settings.get("length_penalty", 1.0)))
            texts.update((i, module.decode_text(t)) for i, t in zip(batch["index"].tolist(), out.tokens))
            flops, flops_full = flops + out.flops, flops_full + out.flops_full
    return [texts[i] for i in sorted(texts)], flops_full / flops


def exits_switched_off(module: Seq2SeqModule, datamodule: Any, split: str, metric: str) -> dict[str, dict[str, float]]:
    """``{stacks: {metric, flops_speedup}}`` for every entry of :data:`STACKS` on ``split``."""
    batches, references = datamodule.eval_batches(split), datamodule.references(split)
    out = {}
    for name, (encoder, decoder) in STACKS.items():
        texts, speedup = generate_with_stacks(module, batches, encoder, decoder)
        out[name] = {metric: rouge_scores(texts, references, [metric])[metric], "flops_speedup": speedup}
    return out


def loss_by_exit_layer(hashee: Seq2SeqModule, full: Seq2SeqModule, batches: Iterable[Mapping[str, torch.Tensor]]
                       ) -> list[dict[str, float]]:
    """Per decoder exit layer of the input token: positions, mean teacher-forced loss of HashEE and of the full model."""
    losses: dict[str, dict[int, list[torch.Tensor]]] = {"hashee": defaultdict(list), "full": defaultdict(list)}
    with torch.inference_mode():
        for batch in batches:
            layers, labels = hashee.target_exits(batch), batch["labels"]
            scored = labels != IGNORE_INDEX
            for name, module in (("hashee", hashee), ("full", full)):
                loss = F.cross_entropy(module(batch).float().transpose(1, 2), labels, reduction="none",
                                       ignore_index=IGNORE_INDEX)
                for layer in layers[scored].unique().tolist():
                    losses[name][layer].append(loss[scored & (layers == layer)])
    rows = []
    for layer in sorted(losses["hashee"]):
        mine, theirs = torch.cat(losses["hashee"][layer]), torch.cat(losses["full"][layer])
        rows.append({"layer": layer, "positions": mine.numel(), "hashee_loss": float(mine.double().mean()),
                     "full_loss": float(theirs.double().mean())})
    return rows


def complete_runs(sweep_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every complete run under ``sweep_dir`` with its results, in folder order."""
    runs = []
    for path in sorted(sweep_dir.rglob(RESULTS_FILE)):
        results = json.loads(path.read_text())
        if is_complete(results):
            runs.append((path.parent, results))
    return runs


def run_pairs(sweep_dir: Path) -> list[tuple[Path, Path, dict[str, Any]]]:
    """(HashEE run, full run of the same task and seed, HashEE's results) for every generation HashEE run."""
    runs = [(folder, results) for folder, results in complete_runs(sweep_dir) if "rouge_file" in results]
    full = {(r["task"], r["seed"]): folder for folder, r in runs if r["method_contract"]["full_model"]}
    return [(folder, full[(r["task"], r["seed"])], r) for folder, r in runs
            if r["method_contract"]["token_exits"] and (r["task"], r["seed"]) in full]


def measure(hashee_dir: Path, full: Seq2SeqModule, recorded: Mapping[str, Any]) -> dict[str, Any]:
    """Both measurements for one HashEE run against the full model of its seed (module docstring)."""
    hashee, datamodule, _ = load_finished_run(hashee_dir)
    metric = recorded["primary_metric"]
    stacks = exits_switched_off(hashee, datamodule, recorded["reported_split"], metric)
    return {"task": recorded["task"], "seed": recorded["seed"], "target": recorded["config"].get("target_speedup"),
            "metric": metric, "recorded": {metric: recorded["primary"], "flops_speedup": recorded["cost"]["flops_speedup"]},
            "verified": abs(stacks["both"][metric] - recorded["primary"]) <= 1e-9,
            "stacks": stacks, "loss_by_exit_layer": loss_by_exit_layer(hashee, full, datamodule.val_dataloader())}


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="hashee-generation-exits", description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="the record (default: SWEEP_DIR/generation_exits.json)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    runs, full_models = [], {}
    for hashee_dir, full_dir, recorded in run_pairs(args.sweep_dir):
        if full_dir not in full_models:  # one full model per seed serves every HashEE run of that seed
            full_models[full_dir] = load_finished_run(full_dir)[0]
        entry = measure(hashee_dir, full_models[full_dir], recorded)
        runs.append({"run": hashee_dir.relative_to(args.sweep_dir).as_posix(),
                     "full_run": full_dir.relative_to(args.sweep_dir).as_posix(), **entry})
        print(f"{entry['task']} seed {entry['seed']} target {entry['target']}: "
              + ", ".join(f"{name} {s[entry['metric']]:.4f} ({s['flops_speedup']:.2f}x)" for name, s in entry["stacks"].items()),
              flush=True)
    record = {"kind": KIND, "meta": {"sweep": args.sweep_dir.name, "code": code_version()}, "runs": runs}
    out = args.out or args.sweep_dir / "generation_exits.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out} ({len(runs)} HashEE runs)")
    return record


def main(argv: list[str] | None = None) -> int:
    """The console script: exit status 0 when at least one HashEE run was measured, 1 when none was."""
    record = run(list(sys.argv[1:] if argv is None else argv))
    return 0 if record["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
