"""The method contract and the registry: what the harness knows about a method, declared by the method itself.

A method class registers with :func:`register` (HashEE, the full model and every baseline do; a method defined in
another package does the same, and lists its class under the ``hashee_bench.methods`` entry-point group so a report
process can find it without a config)::

    @register(MethodContract(name="my_exit", label_variants=("method.threshold",)))
    class MyExit(ExitModule): ...

Every run records its method's contract in ``results.json`` (``method_contract``), so reports read what they need
(label, operating point, role) from the record and never from a method name; :func:`contract_of` finds the contract
of a record that predates it. This module imports no method (``hashee`` never imports ``baselines``): built-in and
third-party classes are reached through the entry points, as Hydra reaches them through ``_target_`` strings.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

ENTRY_POINT_GROUP = "hashee_bench.methods"
TASK_KINDS = ("classification", "regression", "generation")
T = TypeVar("T")


@dataclass(frozen=True)
class MethodContract:
    """What the harness needs to know about a method, beside its code.

    - ``name``: the method's config name (``method.name``) and registry key.
    - ``task_kinds``: the kinds of task it runs (a run of another kind stops with one line).
    - ``operating_point``: ``calibrated`` (a knob chosen on validation to meet ``target_speedup``), ``derived`` (set
      from the target alone: static truncation's depth) or ``none`` (the full model: no target, no curve).
    - ``label_qualifier`` / ``label_variants`` / ``untargeted_label``: the report label, e.g.
      ``hashee[<hash.name>; depth=3; paper]`` (dotted config keys; a variant is shown only when set).
    - ``reference_label``: drawn as a dashed reference line under this label (the full model).
    - ``full_model``: it is the full model (the reference of every speed-up and of the noise check).
    - ``includes_full_model``: its curve continues to speed-up 1 with the full model (static truncation at k = L),
      and it is the reference of the Pareto scores (``pareto_reference``).
    - ``heads_per_target``: a single head whose training depends on the target (HashEE), so its diagnostics are
      drawn per target.
    - ``token_exits``: tokens exit, not examples (HashEE): the report draws its training exit-layer histogram.
    - ``family_variants``: label variants that make a family (HashEE: depth and pooling): runs that differ only in
      them, one per member, and the report's ``<label>; chosen]`` row is the member best on validation.
    - ``focal``: the method the report's claim table puts against every other (HashEE: the paper's method).
    """

    name: str
    task_kinds: tuple[str, ...] = ("classification", "regression")
    operating_point: str = "calibrated"
    label_qualifier: str | None = None
    label_variants: tuple[str, ...] = ()
    untargeted_label: str | None = None
    reference_label: str | None = None
    full_model: bool = False
    includes_full_model: bool = False
    pareto_reference: bool = False
    heads_per_target: bool = False
    token_exits: bool = False
    family_variants: tuple[str, ...] = ()
    focal: bool = False

    def __post_init__(self) -> None:
        if self.operating_point not in ("calibrated", "derived", "none"):
            raise ValueError(f"{self.name}: operating_point={self.operating_point!r}: calibrated, derived or none")
        unknown = sorted(set(self.task_kinds) - set(TASK_KINDS))
        if unknown:
            raise ValueError(f"{self.name}: task kind {unknown[0]!r}: one of {', '.join(TASK_KINDS)}")

    @property
    def has_target(self) -> bool:
        """Whether a run of it asks for a target speed-up (every method but the full model)."""
        return self.operating_point != "none"

    def record(self) -> dict[str, Any]:
        """The contract as ``results.json`` keeps it (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "MethodContract":
        """The contract a ``results.json`` recorded (keys this version does not know are ignored)."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in known}
        return cls(**values)


REGISTRY: dict[str, tuple[MethodContract, type]] = {}


def register(contract: MethodContract) -> Callable[[type[T]], type[T]]:
    """Class decorator: the class's ``contract`` is ``contract`` and the registry lists it under its name (a second
    class under a taken name is refused, unless it is the same class imported again)."""
    def decorate(cls: type[T]) -> type[T]:
        taken = REGISTRY.get(contract.name)
        if taken is not None and (taken[1].__module__, taken[1].__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"method {contract.name!r} is registered twice: {taken[1].__module__}.{taken[1].__qualname__}"
                             f" and {cls.__module__}.{cls.__qualname__}")
        cls.contract = contract  # type: ignore[attr-defined]
        REGISTRY[contract.name] = (contract, cls)
        return cls
    return decorate


def load_entry_point(name: str) -> None:
    """Import the class an installed package lists for ``name`` in :data:`ENTRY_POINT_GROUP` (it registers itself)."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            entry.load()
            return


def contract_of(name: str, recorded: Mapping[str, Any] | None = None) -> MethodContract:
    """A method's contract: the one a run recorded, else the registered one (found through its entry point when its
    class is not imported yet), else the default contract of a calibrated method of that name."""
    if recorded:
        return MethodContract.from_record(recorded)
    if name not in REGISTRY:
        load_entry_point(name)
    found = REGISTRY.get(name)
    return found[0] if found is not None else MethodContract(name=name)


def registered_contract(cls: type) -> MethodContract:
    """The contract a method class registered (a class that did not register itself is refused, with how to)."""
    contract = cls.__dict__.get("contract")  # its own: a subclass never passes for its parent
    if not isinstance(contract, MethodContract):
        raise ValueError(f"{cls.__module__}.{cls.__qualname__} is not a registered method: decorate it with "
                         "@hashee.methods.registry.register(MethodContract(name=...))")
    return contract


def contract_for(method_cfg: Mapping[str, Any], label_type: str) -> MethodContract:
    """The contract of the class a method config names (``_target_``, imported: it registers), checked against the
    config: its ``name`` is the registered one and the task's ``label_type`` is a kind the method runs."""
    from hydra.utils import get_class  # Hydra's own resolution of ``_target_``

    from hashee.core.errors import ConfigError

    try:
        cls = get_class(str(method_cfg["_target_"]))
        contract = registered_contract(cls)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"method._target_={method_cfg.get('_target_')}: {str(exc).splitlines()[0]}") from None
    if method_cfg.get("name") != contract.name:
        raise ConfigError(f"method.name={method_cfg.get('name')}: {method_cfg['_target_']} registers as "
                          f"{contract.name!r}")
    if label_type not in contract.task_kinds:
        raise ConfigError(f"method {contract.name} does not run {label_type} tasks (it runs: "
                          f"{', '.join(contract.task_kinds)})")
    return contract
