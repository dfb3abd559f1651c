"""The timing protocol: interleaved rounds, fastest pass kept, the full model against itself as a noise check.

The passes run on a fake clock (``perf_counter`` of :mod:`hashee.core.cost`, which ``time_inference`` reads):
a stand-in method advances it by a given time per batch instead of sleeping, so the protocol is checked
exactly and a loaded machine cannot make these tests flaky. Times are multiples of 1/256 s, exact in binary.
"""

from __future__ import annotations


from hashee.experiments.evaluation import NOISE_TOLERANCE, measure_times

TICK = 1 / 256  # seconds; sums and ratios of multiples of it are exact floats




class _Timed:
    """Stand-in for a method: ``predict`` and ``full_logits`` take the given seconds per batch on the fake clock,
    the i-th call of each the i-th value of its list (cyclically)."""

    def __init__(self, clock: list[float], method_s: list[float], full_s: list[float]) -> None:
        self.clock, self.method_s, self.full_s = clock, list(method_s), list(full_s)
        self.method_calls = self.calls = 0

    def predict(self, batch):
        self.clock[0] += self.method_s[self.method_calls % len(self.method_s)]
        self.method_calls += 1

    def full_logits(self, batch):
        # one full pass = one value of full_s per batch; alternates before/after within a round
        self.clock[0] += self.full_s[self.calls % len(self.full_s)]
        self.calls += 1


def test_quiet_machine_is_not_flagged_and_keeps_the_fastest_pass(clock):
    """Three rounds of 3 batches; the method's passes take 6, 3 and 9 ticks (its second round is the fastest), the
    full model's always 6. Mutations caught: ``time_s`` from another pass than the fastest (``max(method)``, the
    mean, the last round), and a quiet machine flagged (the tolerance test inverted: ``<= NOISE_TOLERANCE``)."""
    module = _Timed(clock, [2 * TICK] * 3 + [TICK] * 3 + [3 * TICK] * 3, [2 * TICK])
    timing = measure_times(module, [{}] * 3, warmup=0, repeats=3)
    assert timing["timing_repeats"] == 3 and not timing["timing_noisy"]
    assert abs(timing["noise_check_speedup"] - 1.0) < NOISE_TOLERANCE
    assert 3 * TICK <= timing["time_s"] < timing["time_full_s"]
    assert timing["time_s"] == 3 * TICK and timing["time_full_s"] == 6 * TICK  # the fastest pass of each, exactly
    assert timing["time_spread"] == 3.0 and timing["time_full_spread"] == 1.0
    assert module.method_calls == 9 and module.calls == 18  # every batch of every pass, two full passes a round


def test_a_full_model_slower_in_one_half_is_flagged(clock):
    """Per round: 3 batches before (fast), 3 after (twice as slow): the full model 'speeds up' 0.5x against itself.
    Mutation caught: a one-sided noise check (``noise - 1.0 > NOISE_TOLERANCE``, blind to a slow second half)."""
    module = _Timed(clock, [TICK], [TICK, TICK, TICK, 2 * TICK, 2 * TICK, 2 * TICK])
    timing = measure_times(module, [{}] * 3, warmup=0, repeats=2)
    assert timing["timing_noisy"] and timing["noise_check_speedup"] < 0.75
    assert timing["time_full_spread"] > 1.5
    assert timing["noise_check_speedup"] == 0.5 and timing["time_full_spread"] == 2.0


def test_a_full_model_slower_in_the_first_half_is_flagged(clock):
    """The mirror case: the passes before the method twice as slow as those after, 2x against itself.
    Mutation caught: a one-sided noise check the other way (``1.0 - noise > NOISE_TOLERANCE``)."""
    module = _Timed(clock, [TICK], [2 * TICK, 2 * TICK, 2 * TICK, TICK, TICK, TICK])
    timing = measure_times(module, [{}] * 3, warmup=0, repeats=2)
    assert timing["timing_noisy"] and timing["noise_check_speedup"] == 2.0
    assert timing["time_full_s"] == 3 * TICK and timing["time_full_spread"] == 2.0


def test_warm_up_batches_are_run_but_not_timed(clock):
    """With ``warmup=1`` each pass runs its first batch once more, untimed: here that call is slow (a cold cache),
    and it must not reach the timed figures. Mutation caught: the clock started before the warm-up batches."""
    module = _Timed(clock, [8 * TICK, TICK, TICK, TICK], [8 * TICK, 2 * TICK, 2 * TICK, 2 * TICK])
    timing = measure_times(module, [{}] * 3, warmup=1, repeats=2)
    assert module.method_calls == 8 and module.calls == 16  # 1 warm-up + 3 timed batches per pass
    assert timing["time_s"] == 3 * TICK and timing["time_full_s"] == 6 * TICK
    assert not timing["timing_noisy"] and timing["noise_check_speedup"] == 1.0


def test_a_noisy_run_is_marked_in_the_table_and_one_seed_shows_no_zero_spread(clock):
    """A run timed on the fake clock with a full model twice as slow in its second half (noisy) and one timed
    quietly: the table marks the noisy run's measured figures with ``*`` and a footnote, leaves the quiet one bare,
    and neither single-seed row shows a spread of 0 (its bootstrap interval, or ``-``).

    Mutations caught: the mark dropped (``timed`` ignoring ``timing_noisy``), and a zero std printed for one seed
    (``primary_std`` 0.0 for a single seed in ``aggregate``)."""
    from hashee.reports.aggregate import aggregate
    from hashee.reports.render import NOISY_NOTE, markdown_table

    noisy = measure_times(_Timed(clock, [TICK], [TICK] * 3 + [2 * TICK] * 3), [{}] * 3, warmup=0, repeats=1)
    quiet = measure_times(_Timed(clock, [TICK], [2 * TICK]), [{}] * 3, warmup=0, repeats=1)
    assert noisy["timing_noisy"] and not quiet["timing_noisy"]
    rows = [{"task": "t", "method": method, "target": 2.0, "seed": 0, "primary_metric": "accuracy", "primary": 0.8,
             "flops_speedup": 2.0, "measured_speedup": t["time_full_s"] / t["time_s"],
             "efficiency": t["time_full_s"] / t["time_s"] / 2.0, "timing_noisy": t["timing_noisy"],
             "primary_ci95": ci} for method, t, ci in (("pabee", noisy, [0.77, 0.83]), ("static", quiet, None))]
    text = markdown_table(aggregate(rows))
    pabee = next(line for line in text.splitlines() if "| pabee |" in line)
    static = next(line for line in text.splitlines() if "| static |" in line)
    assert pabee.count("*") == 2 and "*" not in static and NOISY_NOTE in text
    assert "0.8000 [0.7700, 0.8300]" in pabee and "0.8000 ± -" in static and "± 0.0000" not in text
