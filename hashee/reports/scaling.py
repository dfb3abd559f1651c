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


PROFILE_OPS = 10  # operators shown per cell: the top ones by the full model's self time, then HashEE's


def profile_markdown(record: dict[str, Any]) -> str:
    """A ``hashee-scaling --profile`` record: per (input, batch size), each operator's self seconds for the full model
    and HashEE at every target (with the full model's over HashEE's: how much it shrank), their total, the operator
    calls per batch, the cell's unprofiled fastest pass, and the time outside operators (the profiled pass's wall
    minus its operators' self time: both under the profiler; a record without the profiled wall shows "-")."""
    cells: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for entry in record["profiles"]:
        cells.setdefault((entry["input"], entry["batch_size"]), {})[entry["method"]] = entry
    lines = []
    for (name, batch), by_method in cells.items():
        methods = ["full"] + sorted((m for m in by_method if m != "full"), key=lambda m: float(m.split("@")[1]))
        seconds = {m: {op["op"]: op["self_s"] for op in by_method[m]["ops"]} for m in methods}
        shown = [op["op"] for op in by_method["full"]["ops"][:PROFILE_OPS]]
        for m in methods[1:]:
            shown += [op["op"] for op in by_method[m]["ops"][:PROFILE_OPS] if op["op"] not in shown]
        head = ["operator", "full s"] + [f"{m} s (full / it)" for m in methods[1:]]
        lines += [f"**{name}, batch {batch}**", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]

        def line(label: str, values: dict[str, float | None], digits: int = 3) -> str:
            full = values["full"]

            def cell(value: float | None) -> str:
                if value is None or full is None:
                    return "-"
                return f"{value:.{digits}f} ({full / value:.2f})" if value > 0 else "0"
            first = "-" if full is None else f"{full:.{digits}f}"
            return f"| {label} | {first} | " + " | ".join(cell(values[m]) for m in methods[1:]) + " |"

        lines += [line(op, {m: seconds[m].get(op, 0.0) for m in methods}) for op in shown]
        lines.append(line("all operators (self)", {m: by_method[m]["self_s"] for m in methods}))
        lines.append(line("operator calls per batch", {m: _calls_per_batch(by_method[m]) for m in methods}, digits=0))
        lines.append(line("fastest unprofiled pass", {m: by_method[m]["wall_s"] for m in methods}))
        lines.append(line("outside operators (profiled pass minus self)", {m: _outside(by_method[m]) for m in methods}))
        lines.append("")
    return "\n".join(lines)


def _calls_per_batch(entry: dict[str, Any]) -> float | None:
    """Operator calls of one profiled pass per batch (None for a record that did not count its batches)."""
    return sum(op["calls"] for op in entry["ops"]) / entry["batches"] if entry.get("batches") else None


def _outside(entry: dict[str, Any]) -> float | None:
    """Seconds of the profiled pass spent outside operators (Python, dispatch, the profiler's own bookkeeping)."""
    return max(entry["profiled_wall_s"] - entry["self_s"], 0.0) if "profiled_wall_s" in entry else None
