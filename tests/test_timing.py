"""The timing protocol: interleaved rounds, fastest pass kept, the full model against itself as a noise check."""

from __future__ import annotations

import time

from hashee.experiments.evaluation import NOISE_TOLERANCE, measure_times


class _Timed:
    """Stand-in for a method: ``predict`` and ``full_logits`` sleep for the given seconds per batch."""

    def __init__(self, method_s: float, full_s: list[float]) -> None:
        self.method_s, self.full_s, self.calls = method_s, list(full_s), 0

    def predict(self, batch):
        time.sleep(self.method_s)

    def full_logits(self, batch):
        # one full pass = one value of full_s per batch; alternates before/after within a round
        time.sleep(self.full_s[self.calls % len(self.full_s)])
        self.calls += 1


def test_quiet_machine_is_not_flagged_and_keeps_the_fastest_pass():
    module = _Timed(0.004, [0.008])
    timing = measure_times(module, [{}] * 3, warmup=0, repeats=3)
    assert timing["timing_repeats"] == 3 and not timing["timing_noisy"]
    assert abs(timing["noise_check_speedup"] - 1.0) < NOISE_TOLERANCE
    assert 0.012 <= timing["time_s"] < timing["time_full_s"]


def test_a_full_model_slower_in_one_half_is_flagged():
    """Per round: 3 batches before (fast), 3 after (twice as slow): the full model 'speeds up' 0.5x against itself."""
    module = _Timed(0.004, [0.004, 0.004, 0.004, 0.008, 0.008, 0.008])
    timing = measure_times(module, [{}] * 3, warmup=0, repeats=2)
    assert timing["timing_noisy"] and timing["noise_check_speedup"] < 0.75
    assert timing["time_full_spread"] > 1.5
