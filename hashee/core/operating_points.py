"""Operating points (docs/methods.md section 4): a knob value is chosen on the validation curve only.

A curve is a list of points ``{"knob", "value", "primary", "flops_speedup", ...}``, one per knob
value. The test curve of the same model is reported, never used to choose.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def choose_operating_point(curve: Sequence[Mapping[str, Any]], target: float) -> tuple[Mapping[str, Any], bool]:
    """The point whose FLOPs speed-up is closest at or above ``target`` (ties: best primary).

    If no point reaches the target, the fastest point; the flag says whether the target was reached.
    """
    reaching = [p for p in curve if p["flops_speedup"] >= target]
    if reaching:
        return min(reaching, key=lambda p: (p["flops_speedup"], -p["primary"])), True
    return max(curve, key=lambda p: (p["flops_speedup"], p["primary"])), False


def test_point_for_target(val_curve: Sequence[Mapping[str, Any]], test_curve: Sequence[Mapping[str, Any]],
                          target: float) -> tuple[Mapping[str, Any], bool] | None:
    """Choose the knob on ``val_curve`` for ``target``; return the test point at that knob value."""
    if not val_curve or not test_curve:
        return None
    chosen, reached = choose_operating_point(val_curve, target)
    for point in test_curve:
        if point["value"] == chosen["value"]:
            return point, reached
    return None
