"""HashEE (Sun et al., 2022): every token exits at a layer fixed by a hash of its id.

No internal classifiers, no learned exit module, no extra parameters. At layer ``l`` only the
tokens whose exit layer is >= ``l`` are gathered and computed; exited tokens keep their frozen
state and (by default) still serve as keys/values. [CLS], special and unseen tokens run to the
last layer ``D``; the backbone's pooler + a linear classifier read the pooled vector after layer ``D``:
by default the backbone's pooling (docs/methods.md 2a: for MiniLM the mean of every real token, exited ones
with their frozen state); ``hashee.pooling=cls`` reads [CLS], which never exits, as the authors' model
does, whatever the baselines read.
Training uses exactly the hash used at inference, and no auxiliary loss.

Differences from the original code (docs/methods.md section 1), all deliberate:
- padding is masked out of attention, so a sequence's logits do not depend on its batch;
- compute really shrinks (tokens are gathered), instead of computing all and restoring exited ones;
- the hash is built from the training split only, and the checkpoint is selected on a validation
  split carved out of train, never on the reported split;
- weight decay is actually applied (the original built parameter groups but never passed them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from hashee.core.backbone import Backbone
from hashee.core.cost import CostModel
from hashee.core.errors import ConfigError
from hashee.data.classification import TaskDataModule
from hashee.hashes.cache import load_or_build_token_hash
from hashee.hashes.settings import HashSettings
from hashee.hashes.table import TokenHash
from hashee.methods.base import ExitModule
from hashee.methods.registry import MethodContract, register
from hashee.tasks.spec import TaskSpec

EXITED_TOKEN_MODES = ("attend", "drop")
POOLINGS = ("cls", "mean")  # hashee.pooling; null = the backbone's (backbone.pooling)


@register(MethodContract(name="hashee", task_kinds=("classification", "regression", "generation"), label_qualifier="hash.name",
                          label_variants=("hashee.depth", "hashee.num_buckets", "hashee.pooling"),
                          untargeted_label="paper", heads_per_target=True, token_exits=True,
                          family_variants=("hashee.depth", "hashee.pooling"), focal=True))
class HashEE(ExitModule):
    """Token-level hash-based early exit on the shared encoder."""

    training_uses_target = True  # the hash (hence what is trained) is chosen for the target
    seq2seq_target = "hashee.methods.seq2seq_hashee.Seq2SeqHashEE"  # the class that runs generation tasks

    def __init__(self, spec: TaskSpec, backbone: Backbone, optim: Mapping[str, Any], hash: Mapping[str, Any],
                 knobs: Mapping[str, Any], name: str = "hashee") -> None:
        super().__init__(spec, backbone, optim, name=name)
        if knobs.get("exited_tokens", "attend") not in EXITED_TOKEN_MODES:
            raise ConfigError(f"hashee.exited_tokens must be one of {EXITED_TOKEN_MODES}, got {knobs.get('exited_tokens')!r}")
        self.attend_exited = knobs.get("exited_tokens", "attend") == "attend"
        self.use_pooling(knobs.get("pooling") or backbone.pooling, backbone)
        self.settings = HashSettings.from_config(hash, knobs, attend_exited=self.attend_exited)
        self.backbone_name = backbone.name
        self.special_ids = set(backbone.tokenizer.all_special_ids)
        self.vocab_size = backbone.model.config.vocab_size
        self.token_hash: TokenHash | None = None

    def use_pooling(self, pooling: str, backbone: Backbone) -> None:
        """Read ``pooling`` (``cls`` or ``mean``) after the last layer. The FLOPs reference (the full model)
        is then counted with the same pooling: the mean costs ``n*d`` more, 0.004 % of a MiniLM layer stack."""
        if pooling not in POOLINGS:
            raise ConfigError(f"hashee.pooling must be one of {', '.join(POOLINGS)} or null, got {pooling!r}")
        self.encoder.pooling = pooling
        self.cost = CostModel.from_config(backbone.model.config, self.spec.num_labels, pooling=pooling)

    def prepare(self, datamodule: TaskDataModule, cache_dir: str | None) -> dict[str, Any]:
        """Build (or load from the disk cache) the hash from the training split only."""
        train_ids = datamodule.token_ids("train")
        key = {"task": self.spec.name, "backbone": self.backbone_name, "max_length": datamodule.max_length,
               "train_fingerprint": datamodule.encoded["train"]._fingerprint, "vocab": self.vocab_size}
        self.token_hash, cached = load_or_build_token_hash(
            self.settings, Path(cache_dir or ".") / "hashes", key,
            train_ids=train_ids, train_labels=datamodule.labels("train"), num_labels=self.spec.num_labels,
            is_regression=self.spec.is_regression, vocab_size=self.vocab_size, special_ids=self.special_ids,
            word_embeddings=self.encoder.embeddings.word_embeddings.weight.detach().clone(), cost_model=self.cost,
        )
        return {"hash": self.token_hash.describe(), "hash_from_cache": cached}

    @property
    def depth(self) -> int:
        if self.token_hash is None:
            raise RuntimeError("HashEE.prepare() must run before the model is used")
        return self.token_hash.depth

    def exit_layers(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Exit layer of every token ``[B, n]`` (0 on padding), from the hash."""
        return self.token_hash.exit_layers(batch["input_ids"], batch["attention_mask"])

    def forward(self, batch: Mapping[str, torch.Tensor], exits: torch.Tensor | None = None) -> torch.Tensor:
        exits = self.exit_layers(batch) if exits is None else exits
        hidden = self.encoder.forward_token_exits(batch["input_ids"], batch["attention_mask"], exits, self.depth,
                                                  batch.get("token_type_ids"), attend_exited=self.attend_exited)
        return self.head(hidden, batch["attention_mask"])  # mean pooling: exited tokens count with their frozen state

    def batch_flops(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.cost.token_exit_flops(self.exit_layers(batch), self.depth, self.attend_exited)

    def predict_with_flops(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.predict_outputs(batch)
        return out["logits"], out["flops"]

    @property
    def head_layer(self) -> int:
        return self.depth

    def predict_outputs(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One draw of exits serves logits and cost (matters for per-occurrence hashing); ``exit_layer``
        is the mean exit layer of the sequence's real tokens."""
        exits = self.exit_layers(batch)
        real = batch["attention_mask"].sum(dim=1).clamp(min=1)
        return {"logits": self(batch, exits), "flops": self.cost.token_exit_flops(exits, self.depth, self.attend_exited),
                "exit_layer": exits.sum(dim=1).to(torch.float32) / real}
