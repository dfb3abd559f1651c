"""Learnability of instance difficulty (hashee/difficulty.py): labels, splits, predictors, metrics, both experiments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, TINY_RUN, compose_config
from hashee.core.backbone import load_backbone
from hashee.core.errors import ConfigError, DataError
from hashee.experiments.difficulty import predictors as P
from hashee.experiments.difficulty.human import balanced_indices, read_pairs_file
from hashee.experiments.difficulty.model import correctness_vectors, pool_splits
from hashee.core.stats import seeds_and_examples_interval
from hashee.experiments.difficulty.scoring import (binary_metrics, example_agreement, exit_layer_scores, exit_layers,
                                                   layer_table, learned_against_trivial, mean_over_layers,
                                                   split_positions, stays_correct)

FIXTURES = Path(__file__).parent / "fixtures" / "difficulty"
HUMAN_FILE = FIXTURES / "snli_human.tsv"
EXP = {"seed": 0, "pool_b_fraction": 0.5, "a_val_fraction": 0.1, "predictor_test_fraction": 0.3}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per test


def _rows(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.RandomState(seed)
    return [{"input_ids": [101, *rng.randint(1000, 2000, size=rng.randint(3, 9)).tolist(), 102], "token_type_ids": None}
            for _ in range(count)]


# --------------------------------------------------------------------------- labels, splits, metrics


def test_correctness_vectors_from_hand_made_logits():
    # 2 layers, 3 instances, 3 classes; gold = [0, 2, 1]
    logits = torch.tensor([[[5.0, 0, 0], [0, 1, 0], [0, 3, 1]],
                           [[0, 1, 0], [0, 0, 2], [1, 4, 0]]])
    vectors = correctness_vectors(logits, torch.tensor([0, 2, 1]))
    assert vectors.tolist() == [[1, 0], [0, 1], [1, 1]]


def test_stays_correct_marks_the_layers_from_the_model_defined_difficulty_on():
    correct = np.array([[0, 1, 0, 1],   # correct at 2, wrong at 3: stays correct only from 4
                        [1, 1, 1, 1],   # layer 1
                        [1, 1, 1, 0],   # the last head is wrong: never (L + 1 = 5)
                        [0, 0, 1, 1]])  # layer 3
    assert stays_correct(correct).tolist() == [[0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 1, 1]]
    assert exit_layers(correct).tolist() == [4, 1, 5, 3]
    assert exit_layer_scores(correct, np.array([[0, 0, 0, 1], [0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]])) == {
        "exact": 0.5, "mean_abs_error": (0 + 1 + 4 + 0) / 4}


def test_example_bootstrap_interval_covers_the_mean_and_two_levels_add_the_seed_spread():
    rng = np.random.default_rng(0)
    shifted = rng.normal(0.05, 0.2, size=400)
    one = seeds_and_examples_interval([shifted])
    assert one.seeds == 1 and one.low < one.mean < one.high and one.excludes_zero
    assert one.mean == pytest.approx(shifted.mean())
    noise = rng.normal(0.0, 0.2, size=400)
    assert not seeds_and_examples_interval([noise]).excludes_zero
    constant = seeds_and_examples_interval([np.full(50, 0.25)])
    assert (constant.low, constant.mean, constant.high) == pytest.approx((0.25, 0.25, 0.25))
    # three seeds that disagree: the interval over seeds and examples is wider than over one seed's examples
    seeds = [rng.normal(m, 0.2, size=400) for m in (-0.05, 0.02, 0.09)]
    pooled = seeds_and_examples_interval(seeds)
    examples_only = seeds_and_examples_interval([np.concatenate(seeds)])
    assert pooled.mean == pytest.approx(np.mean([s.mean() for s in seeds]))
    assert pooled.high - pooled.low > 1.5 * (examples_only.high - examples_only.low)


def test_learned_against_trivial_is_paired_per_example_and_signed():
    truth = np.array([[0, 1], [1, 1], [0, 0], [1, 1]] * 25)
    predicted = {"encoder": {"pred": truth.copy()},                              # every entry right
                 "majority": {"pred": np.tile([[1, 1]], (100, 1))},             # 3/4 of the entries right
                 "length": {"pred": 1 - truth}}                                  # every entry wrong
    rows = {(r["learned"], r["trivial"]): r for r in learned_against_trivial(truth, predicted)}
    assert set(rows) == {("encoder", "majority"), ("encoder", "length")}
    assert rows[("encoder", "majority")]["difference"] == pytest.approx(1 - example_agreement(truth, predicted["majority"]["pred"]).mean())
    assert rows[("encoder", "length")]["difference"] == pytest.approx(1.0)
    assert rows[("encoder", "majority")]["low"] > 0


def test_pool_splits_are_disjoint_and_cover_the_pool():
    labels = [i % 3 for i in range(200)]
    splits = pool_splits(labels, EXP)
    sets = {name: set(idx) for name, idx in splits.items()}
    assert sum(len(s) for s in sets.values()) == 200 and set.union(*sets.values()) == set(range(200))
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not sets[a] & sets[b], (a, b)
    assert len(splits["predictor_train"]) + len(splits["predictor_test"]) == 100
    assert splits == pool_splits(labels, EXP)  # seeded
    assert splits != pool_splits(labels, {**EXP, "seed": 1})


def test_balanced_human_split_is_balanced_and_disjoint():
    difficult = [1] * 10 + [0] * 50
    chosen = balanced_indices(difficult, seed=0)
    assert len(chosen) == 20 and sum(difficult[i] for i in chosen) == 10 and len(set(chosen)) == 20
    train, test = split_positions([difficult[i] for i in chosen], list(range(20)), 0.3, seed=0)
    assert not set(train) & set(test) and len(train) + len(test) == 20
    assert sum(difficult[chosen[i]] for i in test) == 3  # stratified


def test_binary_metrics_on_hand_computed_vectors():
    truth = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    pred = np.array([0, 0, 1, 1, 1, 1, 0, 1])  # positive = 0: TP 2, FN 1, FP 1, TN 4
    metrics = binary_metrics(truth, pred, positive=0)
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert metrics["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert metrics["tpr"] == pytest.approx(2 / 3) and metrics["tnr"] == pytest.approx(4 / 5)
    assert metrics["gmean"] == pytest.approx((2 / 3 * 4 / 5) ** 0.5)
    # no actual positive: TPR undefined (None), mean over layers skips it
    table = layer_table(np.array([[1, 0], [1, 1]]), np.array([[1, 1], [1, 1]]))
    assert table[0]["tpr"] is None and table[0]["f1_incorrect"] is None and table[0]["accuracy"] == 1.0
    assert table[1] == {"layer": 2, "accuracy": 0.5, "f1_incorrect": 0.0, "tpr": 0.0, "tnr": 1.0, "gmean": 0.0}
    means = mean_over_layers(table)
    assert means["accuracy"] == 0.75 and means["tpr"] == 0.0


def test_majority_baseline_predicts_each_layers_majority():
    y_train = np.array([[0, 1, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]])  # layer 3 is a tie -> 1 ("correct")
    pred = P.majority_predictions(y_train, 2)
    assert pred.tolist() == [[0, 1, 1], [0, 1, 1]]


# --------------------------------------------------------------------------- predictors


@pytest.fixture(scope="module")
def fresh_tiny():
    torch.manual_seed(0)
    return load_backbone(TINY)  # not the session fixture: the encoder predictor fine-tunes it


def test_encoder_and_bilstm_predictors_reduce_loss(fresh_tiny):
    rows = _rows(16)
    targets = np.random.RandomState(0).randint(0, 2, size=(16, 4))
    settings = P.FitSettings(epochs=8, lr=1e-2, batch_size=8)
    encoder = P.EncoderPredictor(fresh_tiny, 4)
    losses = P.fit_on_rows(encoder, rows, targets, settings, pad_id=0)
    assert losses[-1] < losses[0]
    assert P.predict_rows(encoder, rows, 8, pad_id=0).shape == (16, 4)
    vectors = fresh_tiny.model.get_input_embeddings().weight.detach()
    lstm = P.BiLSTMPredictor(vectors, hidden_size=8, outputs=4, trainable=False)
    frozen = lstm.embedding.weight.clone()
    losses = P.fit_on_rows(lstm, rows, targets, settings, pad_id=0)
    assert losses[-1] < losses[0] and torch.equal(lstm.embedding.weight, frozen)
    assert set(np.unique(P.predict_rows(lstm, rows, 8, pad_id=0))) <= {0, 1}


def test_layer_units_and_logistic_learn_separable_targets():
    rng = np.random.RandomState(0)
    features = torch.as_tensor(rng.randn(40, 3, 5), dtype=torch.float32)
    targets = (features[:, :, 0] > 0).long().numpy()  # each layer's label = sign of its first feature
    units, losses = P.fit_layer_units(features, targets, P.FitSettings(epochs=200, lr=0.05))
    assert losses[-1] < losses[0] and (P.predict_layer_units(units, features) == targets).mean() > 0.9
    x = features[:, 0].numpy()
    y = np.stack([(x[:, 0] > 0), (x[:, 1] > 0), np.ones(40, dtype=bool)], axis=1).astype(int)  # layer 3: one class
    pred = P.fit_predict_logistic(x, y, x)
    assert (pred[:, :2] == y[:, :2]).mean() > 0.9 and pred[:, 2].tolist() == [1] * 40


def _inputs(rows, y, confidence):
    n = len(rows) // 2
    empty = torch.zeros(len(rows), 1, 1)
    data = P.PredictorData(rows[:n], rows[n:], y[:n], y[n:], empty[:n], empty[n:], confidence[:n], confidence[n:])
    return P.Inputs(None, data, None, torch.zeros(1, 1), y.shape[1], 0, 0)


def test_trivial_predictors_read_only_their_one_feature():
    rows = _rows(200, seed=1)
    lengths = np.array([len(r["input_ids"]) for r in rows])
    confidence = np.random.RandomState(2).uniform(0.4, 1.0, size=200)
    by_length = np.stack([lengths > 6, lengths > 8], axis=1).astype(int)
    by_confidence = np.stack([confidence > 0.6, confidence > 0.9], axis=1).astype(int)
    pred, _ = P.predict_length(_inputs(rows, by_length, confidence))
    assert (pred == by_length[100:]).mean() > 0.9
    pred, _ = P.predict_confidence(_inputs(rows, by_confidence, confidence))
    assert (pred == by_confidence[100:]).mean() > 0.9
    # swapped: length cannot learn the confidence target (near chance on the layer that splits confidence evenly)
    pred, _ = P.predict_length(_inputs(rows, by_confidence, confidence))
    assert (pred[:, 0] == by_confidence[100:, 0]).mean() < 0.8


def test_mean_embeddings_average_the_tokens():
    vectors = torch.arange(12, dtype=torch.float32).view(6, 2)
    means = P.mean_embeddings([{"input_ids": [1, 3]}, {"input_ids": [5]}], vectors)
    assert means.tolist() == [[4.0, 5.0], [10.0, 11.0]]


# --------------------------------------------------------------------------- human-defined difficulty


def test_reader_marks_dash_and_minus_one_as_difficult():
    pairs = read_pairs_file(HUMAN_FILE, ["premise", "hypothesis"], "label", ["-1", "-"])
    assert len(pairs.difficult) == 28 and sum(pairs.difficult) == 8
    assert len(pairs.texts) == 2 and all(len(column) == 28 for column in pairs.texts)
    with pytest.raises(DataError, match=r"malformed.tsv:2: malformed row"):
        read_pairs_file(FIXTURES / "malformed.tsv", ["premise", "hypothesis"], "label", ["-"])
    with pytest.raises(DataError, match="missing column"):
        read_pairs_file(HUMAN_FILE, ["sentence"], "label", ["-"])


def _run(tmp_path: Path, *overrides: str):
    from hashee.experiments.dispatch import run_experiment

    cfg = compose_config(TINY_RUN + [f"data.cache_dir={tmp_path / 'cache'}", *overrides])
    return run_experiment(cfg, tmp_path / "run"), json.loads((tmp_path / "run" / "results.json").read_text())


def test_human_experiment_on_fixture(tmp_path):
    results, saved = _run(tmp_path, "experiment=difficulty_human", f"experiment.human_file={HUMAN_FILE}",
                          "experiment.test_fraction=0.25", "experiment.encoder.epochs=2", "experiment.encoder.lr=1e-3")
    assert list(saved)[-1] == "status" and saved["status"] == "complete"
    assert saved["splits"] == {"rows": 28, "difficult": 8, "balanced": 16, "train": 12, "test": 4, "test_difficult": 2}
    assert saved["chance"] == 0.5 and saved["primary"] == saved["metrics"]["accuracy"]
    assert set(saved["metrics"]) == {"accuracy", "f1_difficult", "tpr", "tnr", "gmean"}
    assert results["primary"] == saved["primary"]


def test_human_experiment_offline_hub_is_one_config_error(tmp_path):
    with pytest.raises(ConfigError, match="human_file"):
        _run(tmp_path, "experiment=difficulty_human", "experiment.hub.path=no-such-owner/no-such-dataset")


# --------------------------------------------------------------------------- model-defined difficulty


def test_regression_task_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="regression"):
        _run(tmp_path, "experiment=difficulty_model", "task=stsb")


def test_difficulty_model_end_to_end(tmp_path):
    results, saved = _run(tmp_path, "experiment=difficulty_model", "data.train_limit=160",
                          "experiment.encoder.epochs=1", "experiment.bilstm.hidden_size=8", "experiment.bilstm.epochs=1",
                          "experiment.layer_linear.epochs=20")
    assert list(saved)[-1] == "status" and saved["status"] == "complete"
    splits = saved["splits"]
    assert splits["pool"] == 160 + 48
    assert splits["a_train"] + splits["a_val"] + splits["part_b"] == splits["pool"]
    assert splits["predictor_train"] + splits["predictor_test"] == splits["part_b"]
    assert set(saved["predictors"]) == {"encoder", "layer_linear", "bilstm", "mean_embedding_linear", "majority",
                                        "length", "confidence"}
    assert saved["target"] == "stays_correct"
    layers = 4  # tiny backbone
    for item in saved["predictors"].values():
        assert [row["layer"] for row in item["per_layer"]] == list(range(1, layers + 1))
        assert set(item["mean"]) == {"accuracy", "f1_incorrect", "tpr", "tnr", "gmean"}
    assert saved["predictors"]["majority"]["mean_accuracy_gap_vs_majority"] == 0.0
    assert len(saved["correct_rate"]["predictor_test"]) == layers
    assert saved["primary_predictor"] == "encoder"  # named before the run, never the best on predictor-test
    assert saved["primary"] == saved["predictors"]["encoder"]["mean_accuracy_gap_vs_majority"]
    assert len(saved["against_trivial"]) == 4 * 3 and sum(saved["difficulty_histogram"]) == splits["predictor_test"]
    examples = np.load(Path(saved["run_dir"]) / "difficulty.npz")
    assert examples["target"].shape == (splits["predictor_test"], layers)
    assert examples["target"].tolist() == stays_correct(examples["correct"]).tolist()
    for name in saved["predictors"]:
        accuracy = (examples[f"pred_{name}"] == examples["target"]).mean()
        assert accuracy == pytest.approx(saved["predictors"][name]["mean"]["accuracy"])
    assert saved["multi_exit"]["method"] == "pabee" and saved["config"]["experiment"]["name"] == "difficulty_model"
    assert results["primary"] == saved["primary"]


def test_unknown_difficulty_target_is_a_config_error_before_training(tmp_path):
    with pytest.raises(ConfigError, match="experiment.target=bogus"):
        _run(tmp_path, "experiment=difficulty_model", "experiment.target=bogus")
    assert not (tmp_path / "run" / "results.json").exists()


def _difficulty_run(folder: Path, seed: int, target: np.ndarray, preds: dict, correct: np.ndarray | None = None,
                    task: str = "sst2") -> None:
    folder.mkdir(parents=True)
    label = np.arange(len(target)) % 2
    correct = target if correct is None else correct
    np.savez_compressed(folder / "difficulty.npz", target=target, correct=correct, label=label,
                        **{f"pred_{n}": p for n, p in preds.items()})
    scored = {n: {"exit_layer": exit_layer_scores(target, p)} for n, p in preds.items()}
    against = [{"learned": "encoder", "trivial": n} for n in ("majority", "length", "confidence")]
    (folder / "results.json").write_text(json.dumps({
        "experiment": "difficulty_model", "status": "complete", "task": task, "seed": seed, "predictors": scored,
        "against_trivial": against,
        "primary_predictor": "encoder", "splits": {"predictor_test": len(target)},
        "difficulty_histogram": np.bincount(exit_layers(target) - 1, minlength=target.shape[1] + 1).tolist()}))


def test_difficulty_report_states_claim_a_per_task_from_the_per_example_outputs(tmp_path):
    from hashee.reports import difficulty
    from hashee.reports.docs import render

    rng = np.random.default_rng(0)
    for seed in (0, 1):
        target = stays_correct(rng.integers(0, 2, size=(300, 3)))
        near = np.where(rng.random(target.shape) < 0.05, 1 - target, target)  # 95 % of the entries right
        _difficulty_run(tmp_path / "study" / f"seed={seed}", seed, target, {
            "encoder": near, "majority": np.tile((target.mean(axis=0) >= 0.5).astype(int), (300, 1)),
            "length": 1 - target, "confidence": near})
    study = tmp_path / "study"
    assert difficulty.is_study(study) and not difficulty.is_study(tmp_path / "missing")
    table = difficulty.task_tables(difficulty.difficulty_runs(study))["sst2"]
    rows = {(c["learned"], c["trivial"]): c["interval"] for c in table["comparisons"]}
    assert rows[("encoder", "majority")].low > 0 and rows[("encoder", "length")].low > 0
    assert rows[("encoder", "confidence")].mean == 0.0 and not rows[("encoder", "confidence")].excludes_zero
    text = render(study, "difficulty")
    assert render(study, "difficulty_claim").splitlines()[-1] in text
    assert "- sst2 (2 seeds): the learned encoder predictor does not beat every trivial predictor " \
           "(beats majority, length; ties confidence): claim (a) holds here." in text
    assert "| encoder | length |" in text and "learned better" in text


def test_export_keeps_the_difficulty_vectors(tmp_path):
    from hashee.reports import difficulty
    from hashee.reports.export import export_study

    target = stays_correct(np.random.default_rng(1).integers(0, 2, size=(40, 3)))
    _difficulty_run(tmp_path / "sweep" / "seed=0", 0, target, {"encoder": target, "majority": target,
                                                               "length": target, "confidence": target})
    assert export_study(tmp_path / "sweep", tmp_path / "out") == 1
    assert (tmp_path / "out" / "runs" / "seed=0" / "difficulty.npz").is_file()
    assert difficulty.task_tables(difficulty.difficulty_runs(tmp_path / "out"))["sst2"]["accuracy"]["encoder"] == 1.0


def test_layers_whose_heads_predict_one_class_are_left_out(tmp_path):
    """MRPC's multi-exit model on half its pool predicted the majority class at layers 1-3 for every example: there
    its "difficulty" is the label. Those layers are left out of the scores, and a task with no other layer is not
    testable. Mutation caught: the one-class check removed (the comparison then scores the class)."""
    from hashee.reports import difficulty
    from hashee.reports.docs import render

    rng = np.random.default_rng(2)
    label = np.arange(200) % 2
    correct = np.stack([label == 1, label == 1, rng.random(200) < 0.7], axis=1).astype(int)  # layers 1-2: always 1
    target = stays_correct(correct)
    learned = target.copy()
    learned[:, :2] = 1 - learned[:, :2]  # wrong on the one-class layers only: a perfect predictor where it counts
    _difficulty_run(tmp_path / "study" / "seed=0", 0, target, {"encoder": learned, "majority": 1 - target,
                    "length": 1 - target, "confidence": 1 - target}, correct=correct, task="mrpc")
    table = difficulty.task_tables(difficulty.difficulty_runs(tmp_path / "study"))["mrpc"]
    assert table["one_class"] == {0: [1, 2]} and table["accuracy"]["encoder"] == 1.0  # layer 3 alone
    text = render(tmp_path / "study", "difficulty_claim")
    assert "- mrpc (1 seed): the learned encoder predictor beats every trivial predictor at 95 %" in text
    assert "Left out: layers whose head predicts one class for every example (seed 0: layers 1, 2)" in text
    _difficulty_run(tmp_path / "flat" / "seed=0", 0, stays_correct(np.stack([label == 1] * 3, axis=1)),
                    {"encoder": target, "majority": target, "length": target, "confidence": target},
                    correct=np.stack([label == 1] * 3, axis=1).astype(int), task="mrpc")
    assert "- mrpc (1 seed): **not testable**" in render(tmp_path / "flat", "difficulty_claim")
