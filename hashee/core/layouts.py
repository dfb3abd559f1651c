"""One table of model layouts: for each checkpoint family (its ``config.model_type``), the class that runs it in
each role.

- ``encoder``: :class:`hashee.core.encoder.MultiExitEncoder`'s view of an encoder-only model (where the attention
  projections are, what the attention adds), e.g. BERT's or MPNet's;
- ``seq2seq``: :mod:`hashee.seq2seq`'s view of an encoder-decoder built from the checkpoint (BERT warm-started as
  BERT2BERT, or BART with its own weights).

A layout class registers itself where it is defined (:func:`register_layout`), so this module imports neither
role's code and ``hashee.core`` never imports ``hashee.seq2seq``. A family without an encoder layout of its own runs
as BERT's (:data:`DEFAULT_ENCODER_FAMILY`); a family without a seq2seq layout cannot generate.
"""

from __future__ import annotations

from typing import Callable, TypeVar

ROLES = ("encoder", "seq2seq")
DEFAULT_ENCODER_FAMILY = "bert"
LAYOUTS: dict[tuple[str, str], type] = {}  # (role, config.model_type) -> layout class

T = TypeVar("T", bound=type)


def register_layout(role: str, *model_types: str) -> Callable[[T], T]:
    """Class decorator: the layout of ``model_types`` in ``role`` (one family, one role, one class)."""
    if role not in ROLES:
        raise ValueError(f"layout role must be one of {ROLES}, got {role!r}")

    def add(layout: T) -> T:
        for model_type in model_types:
            if LAYOUTS.get((role, model_type), layout) is not layout:
                raise ValueError(f"{role} layout of {model_type!r} registered twice")
            LAYOUTS[(role, model_type)] = layout
        return layout
    return add


def layout_for(role: str, model_type: str) -> type | None:
    """The ``role`` layout of a ``model_type`` family (the default family's for an encoder), or None."""
    found = LAYOUTS.get((role, model_type))
    if found is None and role == "encoder":
        return LAYOUTS.get((role, DEFAULT_ENCODER_FAMILY))
    return found


def families(role: str) -> list[str]:
    """The model types with a layout of their own in ``role``."""
    return sorted(model_type for (r, model_type) in LAYOUTS if r == role)
