"""What a ``hashee-scaling`` record says: one table line per (input, batch size) cell, with HashEE's efficiency, its
ceiling and the share of the ceiling it reaches at each target (``scaling.json``'s rows; the docs' generated
blocks render it from a committed record)."""

from __future__ import annotations

from typing import Any


def hashee_cell(row: dict[str, Any]) -> str:
    """A HashEE cell: efficiency (fastest passes, paired), its ceiling, the share of the ceiling reached, the FLOPs
    speed-up and the layers it runs (``D/L``; records without ``layers_run`` charged every layer)."""
    layers = f", {row['layers_run']}/{row['num_layers']} layers" if "layers_run" in row else ""
    return (f"{row['efficiency']:.3f}, {row['efficiency_paired']:.3f} / {row['ceiling']:.3f} = "
            f"{row['efficiency'] / row['ceiling']:.2f} ({row['flops_speedup']:.2f}x{layers})")


def markdown(rows: list[dict[str, Any]]) -> str:
    """One line per cell: time of hf and full, the fixed cost's share, and HashEE's efficiency and ceiling at each target."""
    cells: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault((row["input"], row["batch_size"]), {})[row["method"]] = row
    targets = sorted({r["method"] for r in rows if r["method"].startswith("hashee@")}, key=lambda m: float(m.split("@")[1]))
    head = ["input", "batch", "examples", "mean len", "hf s", "full s", "full / hf", "HashEE at full depth / hf",
            "noise (full again / full)", "fixed share of full"]
    head += [f"{m}: eff, paired / ceiling = share (FLOPs x, layers)" for m in targets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (name, batch), by_method in cells.items():
        hf, full = by_method["hf"], by_method["full"]
        cols = [name, str(batch), str(full["examples"]), f"{full['mean_length']:.0f}", f"{hf['seconds']:.3f}",
                f"{full['seconds']:.3f}", f"{full['over_hf']:.3f}", f"{by_method['hashee_full_depth']['over_hf']:.3f}",
                f"{full['noise_check']:.3f}" + (" (flagged)" if full["noise_flagged"] else ""),
                f"{full['fixed_share_of_full']:.3f}"]
        cols += [hashee_cell(by_method[m]) for m in targets]
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"
