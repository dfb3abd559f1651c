"""What a Hydra sweeper optimises: the validation primary metric of a run, never the reported (test) split's."""

from __future__ import annotations

import math

from hashee.cli.hashee_bench import sweeper_objective


def _results(val_primary: float | None, primary: float) -> dict:
    """The keys of a results.json that carry a primary metric (hashee/experiments/classification.py)."""
    results = {"task": "sst2", "method": "hashee", "status": "complete", "primary_metric": "accuracy",
               "primary": primary, "metrics": {"accuracy": primary}, "reported_split": "test",
               "val_metrics": {"accuracy": val_primary}, "val_primary": val_primary}
    if val_primary is None:
        del results["val_primary"], results["val_metrics"]
    return results


def test_the_sweeper_objective_is_the_validation_primary_metric_not_the_test_one():
    """Mutation caught: ``sweeper_objective`` returning ``results["primary"]`` (the reported split's metric, which
    would then choose the hyper-parameters: test-set tuning) instead of ``results["val_primary"]``."""
    results = _results(val_primary=0.81, primary=0.93)
    objective = sweeper_objective(results)
    assert isinstance(objective, float) and math.isfinite(objective)
    assert objective == 0.81 and objective != results["primary"]
    assert sweeper_objective(_results(val_primary=0.9, primary=0.5)) == 0.9  # not the larger or smaller of the two


def test_no_validation_metric_gives_no_objective_not_the_test_metric():
    """Mutation caught: falling back to ``results["primary"]`` when ``val_primary`` is missing (a DDP rank, an
    older results.json): the sweeper would then be handed the test metric."""
    assert sweeper_objective(_results(val_primary=None, primary=0.93)) is None
