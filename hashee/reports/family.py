"""HashEE's operating point chosen on validation, as the baselines' knobs are (``+sweep=hashee_family``).

At one target, a HashEE *family* is the runs that differ only in ``hashee.depth`` and ``hashee.pooling`` (each
trained with its exits, calibrated at its depth to reach the target). Per task, target and seed, the member with the best primary metric
on the **validation** split is the operating point; the report adds it as ``hashee[<hash>; chosen]`` and lists every
member's validation metric and the choice (:func:`family_table`). The reported split never takes part: a member's
``primary`` (reported split) is not read here.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from hashee.reports.collect import row_contract

CHOSEN = "chosen"


def family_label(row: dict[str, Any]) -> str | None:
    """A run's family: its label without the variants its method's contract lists in ``family_variants``
    (``hashee[frequency]`` for ``hashee[frequency; depth=4]``, ``hashee[frequency; pooling=cls]`` and
    ``hashee[frequency]``); None for a method without families."""
    names = [key.split(".")[-1] for key in row_contract(row).family_variants]
    if not names:
        return None
    return re.sub(rf"; ({'|'.join(map(re.escape, names))})=[^;\]]+", "", row["method"])


def chosen_label(family: str) -> str:
    return family[:-1] + f"; {CHOSEN}]"


def families(rows: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """``{(task, family label, target, seed): member runs}`` of HashEE runs with a target (two members or more)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        family = family_label(row)
        if row.get("source") == "run" and family and row.get("target") is not None:
            groups[(row["task"], family, row["target"], row["seed"])].append(row)
    return {key: members for key, members in groups.items() if len(members) > 1}


def choose(members: list[dict[str, Any]]) -> dict[str, Any]:
    """The member with the best validation metric (ties: the deeper one, then the first by label)."""
    scored = [m for m in members if m.get("val_primary") is not None]
    if not scored:
        raise ValueError("a HashEE family member without a validation metric cannot be chosen")
    return max(scored, key=lambda m: (m["val_primary"], m.get("depth") or 0, m["method"]))


def chosen_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``hashee[<hash>; chosen]`` run row per family: a copy of its validation-chosen member."""
    chosen = []
    for (_, family, _, _), members in sorted(families(rows).items(), key=lambda kv: str(kv[0])):
        best = choose(members)
        chosen.append({**best, "method": chosen_label(family), "chosen_from": best["method"],
                       "family": {m["method"]: m["val_primary"] for m in members}})
    return chosen


def family_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per family: every member's validation metric and FLOPs speed-up, and which one was chosen."""
    table = []
    for (task, family, target, seed), members in sorted(families(rows).items(), key=lambda kv: str(kv[0])):
        best = choose(members)
        for member in sorted(members, key=lambda m: m["method"]):
            table.append({"task": task, "family": family, "target": target, "seed": seed, "member": member["method"],
                          "val_primary": member.get("val_primary"), "flops_speedup": member.get("flops_speedup"),
                          "chosen": member is best})
    return table


def markdown(table: list[dict[str, Any]]) -> str:
    """The family section of report.md (empty without families)."""
    if not table:
        return ""
    lines = ["## HashEE's configuration chosen on validation", "",
             "Per task, target and seed, the HashEE member (depth) with the best validation metric is the operating "
             "point `hashee[...; chosen]`; the reported split takes no part. Training cost: one training per member.",
             "", "| task | family | target | seed | member | validation | FLOPs speed-up | chosen |",
             "|---|---|---:|---:|---|---:|---:|---|"]
    lines += [f"| {r['task']} | {r['family']} | {r['target']:g} | {r['seed']} | {r['member']} | "
              f"{r['val_primary']:.4f} | {r['flops_speedup']:.3f} | {'**yes**' if r['chosen'] else ''} |" for r in table]
    return "\n".join(lines)
