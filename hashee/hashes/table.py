"""A token hash as a lookup table from token id to exit layer (or per-occurrence layer probabilities)."""

from __future__ import annotations

import json
from typing import Any

import torch


class TokenHash:
    """A lookup table from token id to exit layer (or per-occurrence layer probabilities).

    ``table`` has ``vocab_size + 1`` entries; the last one serves every out-of-range id (unseen).
    For ``random_per_occurrence`` an entry of 0 means "draw a layer from ``layer_probs``".
    """

    def __init__(
        self,
        name: str,
        depth: int,
        table: torch.Tensor,
        info: dict[str, Any],
        layer_probs: torch.Tensor | None = None,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.depth = int(depth)
        self.table = table.to(torch.int64).cpu()
        self.layer_probs = None if layer_probs is None else layer_probs.to(torch.float64).cpu()
        self.seed = int(seed)
        self.info = info
        self._tables: dict[torch.device, torch.Tensor] = {}
        self.reset_generator()

    @property
    def vocab_size(self) -> int:
        return self.table.numel() - 1

    def reset_generator(self) -> None:
        """Restart the per-occurrence draws from the hash seed (a run is then reproducible)."""
        self._generator = torch.Generator().manual_seed(self.seed)

    def exit_layers(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` ids -> ``[B, n]`` int64 exit layers: 1..depth on real tokens, 0 on padding."""
        uniforms = None
        if self.layer_probs is not None:
            uniforms = torch.rand(input_ids.shape, generator=self._generator).to(input_ids.device)
        return self.lookup(input_ids, attention_mask, uniforms)

    def token_layers(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Exit layer of each id on its own, any shape (no padding, no first-position rule).

        Used for decoder tokens during generation, one step at a time; the first decoder input is
        the start token, a special id, so it runs to ``depth`` as in teacher forcing."""
        layers = self._table_on(input_ids.device)[input_ids.clamp(0, self.vocab_size)]
        if self.layer_probs is not None:
            uniforms = torch.rand(input_ids.shape, generator=self._generator).to(input_ids.device)
            drawn = draw_layers(self.layer_probs.to(input_ids.device), uniforms)
            layers = torch.where(layers == 0, drawn, layers)
        return layers

    def lookup(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, uniforms: torch.Tensor | None
    ) -> torch.Tensor:
        """Table lookup; ``uniforms`` (same shape, in [0, 1)) drive the per-occurrence draws."""
        table = self._table_on(input_ids.device)
        layers = table[input_ids.clamp(0, self.vocab_size)]
        if uniforms is not None and self.layer_probs is not None:
            drawn = draw_layers(self.layer_probs.to(input_ids.device), uniforms)
            layers = torch.where(layers == 0, drawn, layers)
        layers[..., 0] = self.depth
        return layers * (attention_mask != 0)

    def _table_on(self, device: torch.device) -> torch.Tensor:
        if device not in self._tables:
            self._tables[device] = self.table.to(device)
        return self._tables[device]

    def describe(self) -> dict[str, Any]:
        """JSON-serializable summary (see :func:`hashee.hashes.build.build_token_hash` for the keys)."""
        return json.loads(json.dumps(self.info))

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "depth": self.depth,
            "table": self.table.clone(),
            "layer_probs": None if self.layer_probs is None else self.layer_probs.clone(),
            "seed": self.seed,
            "info_json": json.dumps(self.info),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "TokenHash":
        return cls(
            name=state["name"],
            depth=state["depth"],
            table=state["table"],
            info=json.loads(state["info_json"]),
            layer_probs=state["layer_probs"],
            seed=state["seed"],
        )


def draw_layers(layer_probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Layers 1..D drawn by inverse CDF: ``uniforms`` in [0, 1) -> layer with ``P = layer_probs``."""
    cdf = torch.cumsum(layer_probs, 0)
    cdf = cdf / cdf[-1]
    drawn = torch.searchsorted(cdf[:-1].contiguous(), uniforms.to(cdf.dtype).contiguous(), right=True)
    return drawn + 1
