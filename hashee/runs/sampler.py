"""The Optuna sampler of ``+sweep=tune``: the recipe the sweep starts from is trial 0, then the configured search.

A tuning sweep that never tries the recipe it replaces can write a "tuned" recipe that is worse on
validation than the default (with a few trials, it often is). :class:`DefaultFirstSampler` makes
trial 0 the starting recipe (``conf/sweep/tune.yaml`` passes the run's ``recipe.*`` values: the task's
default unless overridden) and asks the wrapped sampler for every later trial, so the best trial, and
the recipe written, is at least as good on validation as the default among the trials run. The wrapped
sampler is not called for trial 0, so trial ``k + 1`` gets what it would have proposed as trial ``k``.
"""

from __future__ import annotations

from typing import Any, Mapping

import optuna
from hydra.errors import CompactHydraException
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler

from hashee.core.errors import ConfigError
from hashee.runs.recipe import same_value


class SearchSpaceError(ConfigError, CompactHydraException):
    """A starting recipe outside the search space; Hydra prints a CompactHydraException as its one line."""


def _inside(name: str, value: Any, distribution: BaseDistribution) -> Any:
    """``value`` as the distribution's type, or :class:`SearchSpaceError` when the search space excludes it."""
    if isinstance(distribution, CategoricalDistribution):
        for choice in distribution.choices:
            if same_value(choice, value):
                return choice
    else:
        cast = int(value) if type(distribution).__name__.startswith("Int") else float(value)
        if distribution._contains(distribution.to_internal_repr(cast)):
            return cast
    raise SearchSpaceError(f"+sweep=tune: the starting recipe's {name}={value} is outside its search space {distribution}; "
                           f"widen hydra.sweeper.params.{name} to include it")


class DefaultFirstSampler(BaseSampler):
    """Trial 0 takes ``first`` (search parameter -> value); every later trial comes from ``base``."""

    def __init__(self, base: BaseSampler, first: Mapping[str, Any]) -> None:
        self.base = base
        self.first = {str(name): value for name, value in dict(first).items()}

    def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict:
        return {} if trial.number == 0 else self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict) -> dict:
        return {} if trial.number == 0 else self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if trial.number == 0 and param_name in self.first:
            return _inside(param_name, self.first[param_name], param_distribution)
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if hasattr(self.base, "before_trial"):  # optuna >= 3
            self.base.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: Any, values: Any) -> None:
        self.base.after_trial(study, trial, state, values)
