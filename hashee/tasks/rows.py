"""Examples of one split as read from their source, before they become a ``datasets.Dataset``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass
class Rows:
    """Examples of one split before they become a Dataset; ``origin`` names the file."""

    origin: str
    text_a: list[str]
    text_b: list[str] | None
    labels: list
    groups: list | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: Sequence[int]) -> "Rows":
        """The rows at ``indices`` (in that order)."""
        pick = lambda values: None if values is None else [values[i] for i in indices]  # noqa: E731
        return Rows(self.origin, pick(self.text_a), pick(self.text_b), pick(self.labels), pick(self.groups))
