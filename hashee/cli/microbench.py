"""Micro-benchmark: the multi-exit encoder at full depth against the stock ``transformers`` forward.

    python -m hashee.cli.microbench task=sst2 data.glue_dir=../shared/data/glue

Takes the same Hydra overrides as ``hashee-bench`` (task, backbone, data.*), builds the reported
split's batches exactly as a run does, and times, interleaved, best of ``--repeats``:
- ``hf``: ``BertModel(...)`` forward (padded batch, SDPA) + pooler,
- ``full``: this project's encoder, every token to the last layer (the full-model reference),
- ``hashee_full_depth``: HashEE's token-exit path with every token hashed to the last layer.
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import torch

from hashee.core.allocator import keep_freed_memory
from hashee.core.cost import time_inference


def time_pair(fns: dict[str, Callable[[Any], Any]], batches: list, warmup: int, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds of each function over all batches, interleaved."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], time_inference(fn, batches, warmup))
    return best


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from hydra import compose, initialize_config_module

    from hashee.core.backbone import load_backbone
    from hashee.core.encoder import MultiExitEncoder
    from hashee.experiments.steps import build_data
    from hashee.tasks.spec import TaskSpec

    args = list(sys.argv[1:] if argv is None else argv)
    repeats = 3
    if "--repeats" in args:
        i = args.index("--repeats")
        repeats = int(args[i + 1])
        del args[i:i + 2]
    with initialize_config_module(config_module="hashee_conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=args)
    if cfg.eval.threads:
        torch.set_num_threads(int(cfg.eval.threads))
    if cfg.eval.keep_freed_memory:
        keep_freed_memory()
    spec = TaskSpec.from_config(cfg.task)
    backbone = load_backbone(cfg.backbone)
    datamodule = build_data(cfg, spec, backbone.tokenizer, backbone.source)
    batches = datamodule.eval_batches("test")
    model = backbone.model.eval()
    encoder = MultiExitEncoder(model).eval()
    depth = encoder.num_layers

    def hf(batch: dict) -> torch.Tensor:
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch["token_type_ids"]).pooler_output

    def full(batch: dict) -> torch.Tensor:
        hidden = encoder.forward_full(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        return encoder.pool(hidden, batch["attention_mask"])

    def hashee_full_depth(batch: dict) -> torch.Tensor:
        exits = torch.where(batch["attention_mask"].bool(), depth, 0)
        hidden = encoder.forward_token_exits(batch["input_ids"], batch["attention_mask"], exits, depth,
                                             batch["token_type_ids"])
        return encoder.pool(hidden, batch["attention_mask"])

    seconds = time_pair({"hf": hf, "full": full, "hashee_full_depth": hashee_full_depth}, batches,
                        int(cfg.eval.warmup_batches), repeats)
    report = {"task": spec.name, "split": spec.test_split_name, "examples": sum(len(b["labels"]) for b in batches),
              "batch_size": int(cfg.data.eval_batch_size), "threads": torch.get_num_threads(), "repeats": repeats,
              "seconds": seconds, "full_over_hf": seconds["full"] / seconds["hf"],
              "hashee_full_depth_over_hf": seconds["hashee_full_depth"] / seconds["hf"]}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
