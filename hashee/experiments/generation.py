"""The generation run (``experiment=default`` on a ``label_type: generation`` task): task -> pairs ->
encoder-decoder method -> prepare -> train (select on val) -> calibrate (val) -> generate -> ROUGE + cost.

A method's class names the class that runs it on generation tasks (its ``seq2seq_target`` attribute: full,
hashee, static, confidence); other methods refuse generation tasks with one line. The ``seq2seq_target`` keys of
conf/method/full.yaml and hashee.yaml only mirror it (they are in the fingerprints of recorded runs) and must agree.

Cost block (docs/methods.md sections 3 and 6), on the reported split:
- ``flops`` / ``flops_full``: analytic FLOPs of the method's generation, and of the same decoding
  steps with every token at every layer (so the ratio compares equal work);
- ``generated_tokens`` and FLOPs per generated token for both; ``decoder_exit_layers``: how many decoding
  steps (over rows) ended at each decoder layer, and their mean (``mean_decoder_exit_layer``);
- ``time_s`` / ``time_full_s``: wall-clock of generating the split with the exits, and of the same
  decoding steps without exits (interleaved, best of ``eval.timing_repeats``): with greedy decoding the
  reference replays the method's own tokens at full depth (forced decoding), so both clocks run the same
  steps with the same rows alive, the work ``flops_full`` counts (``timing_reference: same_steps``). Beam
  search has no replay: its reference is the same weights generating without exits
  (``timing_reference: free``), which can generate different lengths, so ``measured_speedup`` compares
  time per generated token (``measured_speedup_total_time``: whole-split times).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from hashee.core.allocator import allocator_setting
from hashee.core.errors import ConfigError
from hashee.core.stats import seeds_and_examples_interval
from hashee.data.seq2seq import Seq2SeqDataModule
from hashee.experiments.steps import cache_dir, finish_run, instantiate_method, start_run
from hashee.experiments.training import train_or_reuse
from hashee.methods.seq2seq_full import Seq2SeqModule
from hashee.runs.logger import make_logger
from hashee.runs.results import ROUGE_FILE
from hashee.seq2seq.backbone import load_seq2seq_backbone
from hashee.seq2seq.generation import mean_exit_layer
from hashee.tasks.generation import GenerationSpec
from hashee.tasks.rouge import example_rouge, rouge_scores

SAMPLES_IN_RESULTS = 8


def generation_class(method: dict[str, Any]) -> str:
    """The class a method runs on generation tasks: its class's ``seq2seq_target``; a ``seq2seq_target`` key in the
    config (a mirror kept for recorded fingerprints) must name the same one."""
    target = getattr(get_class(str(method["_target_"])), "seq2seq_target", None)
    if not target:
        raise ConfigError(f"method {method.get('name')!r} does not support generation tasks (use method=full, hashee, "
                          "static or confidence)")
    mirror = method.pop("seq2seq_target", None)
    if mirror is not None and mirror != target:
        raise ConfigError(f"method.seq2seq_target={mirror}: {method['_target_']} generates with {target}")
    return target


def build_module(cfg: DictConfig, spec: GenerationSpec, backbone: Any) -> Seq2SeqModule:
    """Instantiate the method's generation class (:func:`generation_class`)."""
    method = OmegaConf.to_container(cfg.method, resolve=True)
    method["_target_"] = generation_class(method)
    return instantiate_method(method, spec=spec, backbone=backbone, optim=cfg.optim, generation=cfg.generation)


def generate_split(module: Seq2SeqModule, batches: list[Mapping[str, torch.Tensor]], exits: bool = True) -> dict[str, Any]:
    """Generate every batch: :meth:`Seq2SeqModule.generate_split` (predictions in dataset order, FLOPs, generated-token
    counts, the decoder exit histogram and each batch's tokens, what a timing replay forces)."""
    return module.generate_split(batches, exits)


def time_generation(module: Seq2SeqModule, batches: list[Mapping[str, torch.Tensor]], exits: bool, warmup: int,
                    forced: Sequence[Sequence[Sequence[int]]] | None = None) -> tuple[float, int]:
    """Seconds and generated tokens of generating every batch, after ``warmup`` untimed batches;
    ``forced``: per batch, the tokens each row must emit (a replay of the same decoding steps)."""
    plan = list(zip(batches, forced if forced is not None else [None] * len(batches)))
    with torch.inference_mode():
        for batch, tokens in plan[:warmup]:
            module.generate(batch, exits=exits, forced=tokens)
        start = time.perf_counter()
        produced = sum(module.generate(batch, exits=exits, forced=tokens).generated_tokens for batch, tokens in plan)
        return time.perf_counter() - start, produced


def generation_cost(module: Seq2SeqModule, test: Mapping[str, Any], batches: list, cfg: DictConfig) -> dict[str, Any]:
    tokens = max(1, test["generated_tokens"])
    block: dict[str, Any] = {
        "flops": test["flops"], "flops_full": test["flops_full"], "flops_speedup": test["flops_full"] / test["flops"],
        "generated_tokens": test["generated_tokens"], "flops_per_generated_token": test["flops"] / tokens,
        "flops_full_per_generated_token": test["flops_full"] / tokens,
        "decoder_exit_layers": test["exit_layers"], "mean_decoder_exit_layer": mean_exit_layer(test["exit_layers"]),
        "batch_size": int(cfg.data.eval_batch_size), "threads": torch.get_num_threads(),
        "allocator": allocator_setting(), "examples": len(test["predictions"]), "num_beams": int(cfg.generation.num_beams),
    }
    if cfg.eval.timing:
        replay = int(cfg.generation.num_beams) <= 1  # greedy: the reference replays the method's tokens
        forced = {True: None, False: test["batch_tokens"] if replay else None}
        runs: dict[bool, list[tuple[float, int]]] = {True: [], False: []}
        for _ in range(max(1, int(cfg.eval.timing_repeats))):  # interleaved: a slow phase hits both
            for exits in (False, True):
                runs[exits].append(time_generation(module, batches, exits, int(cfg.eval.warmup_batches), forced[exits]))
        (time_s, produced), (time_full_s, produced_full) = min(runs[True]), min(runs[False])
        block.update(timing_reference="same_steps" if replay else "free",
                     time_s=time_s, time_full_s=time_full_s, generated_tokens_full=produced_full,
                     time_per_token_s=time_s / max(1, produced), time_full_per_token_s=time_full_s / max(1, produced_full))
        block["measured_speedup"] = block["time_full_per_token_s"] / block["time_per_token_s"]
        block["measured_speedup_total_time"] = time_full_s / time_s
        block["efficiency"] = block["measured_speedup"] / block["flops_speedup"]
    return block


def build_data(cfg: DictConfig, spec: GenerationSpec, backbone: Any) -> Seq2SeqDataModule:
    """The task's data module, set up, with the run's lengths and batch sizes."""
    gen = cfg.generation
    datamodule = Seq2SeqDataModule(spec, cfg.data, backbone.tokenizer, backbone.source, backbone.start_id,
                                   backbone.pad_id, int(gen.max_source_length), int(gen.max_target_length),
                                   batch_size=int(cfg.data.batch_size), eval_batch_size=int(cfg.data.eval_batch_size),
                                   seed=int(cfg.seed), cache_dir=str(Path(cache_dir(cfg)) / "tokenized"))
    datamodule.setup()
    return datamodule


def load_finished_run(run_dir: Path) -> tuple[Seq2SeqModule, Seq2SeqDataModule, DictConfig]:
    """A finished run's module with its best checkpoint (in eval mode), its data module and its config: to time or
    inspect the trained model again without training it."""
    saved = json.loads((Path(run_dir) / "results.json").read_text())
    cfg = OmegaConf.create(saved["config"])
    spec = GenerationSpec.from_config(cfg.task)
    backbone = load_seq2seq_backbone(cfg.backbone)
    datamodule = build_data(cfg, spec, backbone)
    module = build_module(cfg, spec, backbone)
    module.prepare(datamodule, cache_dir(cfg))
    checkpoint = torch.load(saved["train"]["stages"][-1]["best_checkpoint"], map_location="cpu", weights_only=True)
    module.load_state_dict(checkpoint["state_dict"])
    module.use_operating_point(saved.get("method_info", {}).get("operating_point") or {})
    return module.eval(), datamodule, cfg


def run_generation(cfg: DictConfig, run_dir: Path, fingerprint: str | None = None) -> dict[str, Any]:
    """Run one generation experiment end to end and write ``results.json`` into ``run_dir``."""
    results = start_run(cfg, run_dir, fingerprint)
    spec = GenerationSpec.from_config(cfg.task)
    backbone = load_seq2seq_backbone(cfg.backbone)
    datamodule = build_data(cfg, spec, backbone)
    module = build_module(cfg, spec, backbone)
    method_info = {"prepare": module.prepare(datamodule, cache_dir(cfg))}
    logger = make_logger(cfg, run_dir, results["config"])
    results["train"] = train_or_reuse(cfg, module, datamodule, run_dir, logger)
    results["train"].update(examples=len(datamodule.encoded["train"]), val_examples=len(datamodule.encoded["val"]))
    module.eval()
    target = cfg.get("target_speedup")
    method_info["operating_point"] = module.calibrate(datamodule, None if target is None else float(target))

    val = generate_split(module, datamodule.eval_batches("val"))
    test_batches = datamodule.eval_batches("test")
    test = generate_split(module, test_batches)
    references = datamodule.references("test")
    per_example = example_rouge(test["predictions"], references, spec.metrics)
    np.savez_compressed(run_dir / ROUGE_FILE, index=np.arange(len(references)), **per_example)
    metrics = {name: float(values.mean()) for name, values in per_example.items()}
    interval = seeds_and_examples_interval([per_example[spec.primary_metric]])
    val_metrics = rouge_scores(val["predictions"], datamodule.references("val"), spec.metrics)
    results.update(
        reported_split=spec.test_split_name,
        metrics=metrics,
        primary_metric=spec.primary_metric,
        primary=metrics[spec.primary_metric],
        primary_ci95=[interval.low, interval.high],
        rouge_file=ROUGE_FILE,
        val_metrics=val_metrics,
        val_primary=val_metrics[spec.primary_metric],
        val_flops_speedup=val["flops_full"] / val["flops"],
        cost=generation_cost(module, test, test_batches, cfg),
        method_info=method_info,
        samples=[{"reference": r, "prediction": p} for r, p in zip(references, test["predictions"])][:SAMPLES_IN_RESULTS],
    )
    finish_run(run_dir, results, logger)
    return results
