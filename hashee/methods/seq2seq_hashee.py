"""HashEE for sequence-to-sequence generation (docs/methods.md section 6).

Two hashes, built from the training split only: one over source tokens (encoder exits, as for
classification) and one over decoder input tokens (decoder exits). A decoder token's state is
copied upward from its exit layer: later tokens attend to it at every layer, the LM head reads its
frozen state, and during generation the key/value cache above its exit is filled from that state
(:meth:`hashee.seq2seq.network.Seq2SeqNetwork.step`). Training (teacher forcing) and generation use the
same hashes. Special tokens (the decoder start token included) and unseen ids run to the last layer.

Speed-up control, as for classification: the paper knobs (``hashee.depth``, ``hashee.num_buckets``,
applied to both stacks) or ``hashee.target_speedup = s`` for the WHOLE model. The LM head (2*d*V
per generated token) and the cross-attention keys/values of the source cannot be skipped by token
exits, so both stacks are calibrated to the layer speed-up ``s_l`` that brings the whole model to
``s`` on training pairs: with full cost F = A + R (A: the layers, R: the rest), ``s_l = A / (F/s - R)``.
A target the fixed part makes unreachable fails before training with one line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch

from hashee.core.errors import ConfigError
from hashee.core.padding import pad_sequences
from hashee.data.seq2seq import Seq2SeqDataModule
from hashee.hashes.cache import load_or_build_token_hash
from hashee.hashes.calibration import CALIBRATION_SEQUENCES
from hashee.hashes.functions import LABEL_FREE_HASHES
from hashee.hashes.settings import HashSettings
from hashee.hashes.table import TokenHash
from hashee.methods.hashee import EXITED_TOKEN_MODES
from hashee.methods.seq2seq_full import Seq2SeqModule
from hashee.seq2seq.backbone import Seq2SeqBackbone
from hashee.seq2seq.generation import TargetLayers
from hashee.tasks.generation import GenerationSpec


class Seq2SeqHashEE(Seq2SeqModule):
    """Token-level hash-based exits in the encoder and the decoder of an encoder-decoder."""

    training_uses_target = True

    def __init__(self, spec: GenerationSpec, backbone: Seq2SeqBackbone, optim: Mapping[str, Any],
                 generation: Mapping[str, Any], hash: Mapping[str, Any], knobs: Mapping[str, Any],
                 name: str = "hashee") -> None:
        super().__init__(spec, backbone, optim, generation, name=name)
        if str(hash["name"]) not in LABEL_FREE_HASHES:
            raise ConfigError(f"hash {hash['name']!r} needs class labels; generation tasks take one of {LABEL_FREE_HASHES}")
        if knobs.get("exited_tokens", "attend") != EXITED_TOKEN_MODES[0]:
            raise ConfigError("generation supports hashee.exited_tokens=attend only (exited target tokens stay keys/values)")
        self.settings = HashSettings.from_config(hash, knobs)
        self.backbone_name = backbone.name
        self.special_ids = set(backbone.tokenizer.all_special_ids) | {backbone.start_id, backbone.eos_id, backbone.pad_id}
        self.source_hash: TokenHash | None = None
        self.target_hash: TokenHash | None = None

    # -- hashes ----------------------------------------------------------------------------
    def prepare(self, datamodule: Seq2SeqDataModule, cache_dir: str | None) -> dict[str, Any]:
        """Build (or load) both hashes from the training split; report the expected whole-model speed-up."""
        sources, targets = datamodule.token_ids("train", "source"), datamodule.token_ids("train", "target")
        layer_target = None
        if self.settings.target_speedup is not None:
            layer_target = self.layer_speedup(self.settings.target_speedup, sources, targets)
        settings = dataclasses.replace(self.settings, target_speedup=layer_target)
        key = {"task": self.spec.name, "backbone": self.backbone_name, "lengths": [datamodule.max_source_length,
               datamodule.max_target_length], "train_fingerprint": datamodule.encoded["train"]._fingerprint}
        self.source_hash, cached_source = self._hash(settings, sources, "source", key, cache_dir)
        self.target_hash, cached_target = self._hash(settings, targets, "target", key, cache_dir)
        expected = self.train_speedup(sources, targets, self.source_hash, self.target_hash)
        return {"target_speedup": self.settings.target_speedup, "layer_target_speedup": layer_target,
                "expected_train_speedup": expected, "source_hash": self.source_hash.describe(),
                "target_hash": self.target_hash.describe(), "hash_from_cache": cached_source and cached_target}

    def _hash(self, settings: HashSettings, train_ids: list[list[int]], side: str, key: Mapping[str, Any],
              cache_dir: str | None) -> tuple[TokenHash, bool]:
        encoder_side = side == "source"
        embeddings = self.net.word_embeddings(side)
        return load_or_build_token_hash(
            settings, Path(cache_dir or ".") / "hashes", {**key, "side": side},
            train_ids=train_ids, train_labels=[0] * len(train_ids), num_labels=1, is_regression=False,
            vocab_size=self.net.vocab_size, special_ids=self.special_ids,
            word_embeddings=embeddings.detach().clone(),
            cost_model=self.cost.encoder_model if encoder_side else self.cost.decoder_model,
        )

    def _sample(self, sources: list[list[int]], targets: list[list[int]]) -> tuple[torch.Tensor, ...]:
        """Padded ids and masks of a seeded sample of training pairs (for speed-up estimates)."""
        generator = torch.Generator().manual_seed(self.settings.seed)
        picks = torch.randperm(len(sources), generator=generator)[:CALIBRATION_SEQUENCES].tolist()
        return (*pad_sequences([sources[i] for i in picks]), *pad_sequences([targets[i] for i in picks]))

    def layer_speedup(self, target: float, sources: list[list[int]], targets: list[list[int]]) -> float:
        """The layer speed-up ``s_l`` that brings the whole model to ``target`` (module docstring)."""
        _, source_mask, _, target_mask = self._sample(sources, targets)
        cost, lengths = self.cost, source_mask.sum(1)
        full = self._full_flops(source_mask, target_mask)
        fixed = cost.memory_flops(lengths, cost.decoder_layers) + float(target_mask.sum()) * cost.lm_head_flops
        if full / target <= fixed:
            raise ConfigError(f"target_speedup={target} is unreachable for generation: the LM head and the source's "
                              f"cross-attention keys/values alone limit the speed-up to {full / fixed:.2f}x here")
        return (full - fixed) / (full / target - fixed)

    def _full_flops(self, source_mask: torch.Tensor, target_mask: torch.Tensor) -> float:
        return self.cost.full_pairs_flops(source_mask, target_mask)

    def train_speedup(self, sources: list[list[int]], targets: list[list[int]], source_hash: TokenHash,
                      target_hash: TokenHash) -> float:
        """Whole-model FLOPs speed-up of the hashes on the training sample (teacher-forced targets)."""
        source_ids, source_mask, target_ids, target_mask = self._sample(sources, targets)
        lengths = source_mask.sum(1)
        method = self.cost.encoder_flops(lengths, source_hash.exit_layers(source_ids, source_mask), source_hash.depth)
        exits = target_hash.exit_layers(target_ids, target_mask)
        method += float(self.cost.teacher_forced_flops(exits, lengths, target_hash.depth).sum())
        source_hash.reset_generator()
        target_hash.reset_generator()
        return self._full_flops(source_mask, target_mask) / method

    # -- exits -----------------------------------------------------------------------------
    def _require(self) -> tuple[TokenHash, TokenHash]:
        if self.source_hash is None or self.target_hash is None:
            raise RuntimeError("Seq2SeqHashEE.prepare() must run before the model is used")
        return self.source_hash, self.target_hash

    def source_exits(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self._require()[0].exit_layers(batch["input_ids"], batch["attention_mask"])

    def target_exits(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self._require()[1].exit_layers(batch["decoder_input_ids"], batch["decoder_attention_mask"])

    def target_layers(self) -> TargetLayers:
        return self._require()[1].token_layers

    @property
    def depths(self) -> tuple[int, int]:
        source, target = self._require()
        return source.depth, target.depth
