"""Tests for hashee.hashes: token hashes, bucket assignment, speed-up calibration and caching."""

from __future__ import annotations

import math

import pytest
import torch

from hashee.core.cost import CostModel
from hashee.core.errors import ConfigError
from hashee.hashes.build import build_token_hash
from hashee.hashes.cache import load_or_build_token_hash
from hashee.hashes.cluster import cluster_ranks, kmeans
from hashee.hashes.functions import mutual_information
from hashee.hashes.layers import bucket_layers
from hashee.hashes.settings import HashSettings
from hashee.hashes.table import TokenHash

VOCAB = 200
SPECIALS = {0, 1, 2, 3, 4}  # pad, cls, sep, mask, unk
CLS, SEP = 1, 2
COST = CostModel(hidden=64, ffn=256, num_layers=6, num_labels=2)


def make_corpus(num: int = 1500, seed: int = 0, skew: float = 0.8, vocab_hi: int = VOCAB) -> list[list[int]]:
    """Sequences [CLS] body [SEP] with Zipf-like body tokens drawn from ids 5..vocab_hi-1."""
    generator = torch.Generator().manual_seed(seed)
    probs = 1.0 / torch.arange(1, vocab_hi - 4, dtype=torch.float64) ** skew
    corpus = []
    for _ in range(num):
        n = int(torch.randint(6, 18, (1,), generator=generator))
        body = (torch.multinomial(probs, n, replacement=True, generator=generator) + 5).tolist()
        corpus.append([CLS, *body, SEP])
    return corpus


def pad(corpus: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in corpus)
    ids = torch.zeros(len(corpus), width, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for i, seq in enumerate(corpus):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    return ids, mask


def build(settings: HashSettings, corpus=None, labels=None, **overrides) -> TokenHash:
    corpus = make_corpus() if corpus is None else corpus
    labels = torch.arange(len(corpus)) % 2 if labels is None else labels
    kwargs = dict(
        train_ids=corpus,
        train_labels=labels,
        num_labels=2,
        is_regression=False,
        vocab_size=VOCAB,
        special_ids=SPECIALS,
        word_embeddings=torch.randn(VOCAB, 16, generator=torch.Generator().manual_seed(7)),
        cost_model=COST,
    )
    kwargs.update(overrides)
    return build_token_hash(settings, **kwargs)


def flops_speedup(hash_: TokenHash, corpus: list[list[int]], attend_exited: bool = True) -> float:
    """Independent FLOPs speed-up over the corpus, against all L layers plus the head."""
    ids, mask = pad(corpus)
    layers = hash_.exit_layers(ids, mask)
    method = COST.token_exit_flops(layers, hash_.depth, attend_exited).sum()
    return float(COST.full_flops(mask.sum(1)).sum() / method)


# ----------------------------------------------------------------------------- determinism, protection


@pytest.mark.parametrize("name", ["random", "cluster", "random_per_occurrence"])
def test_seed_determinism(name):
    corpus = make_corpus()
    ids, mask = pad(corpus[:50])
    same = [build(HashSettings(name, seed=3), corpus).exit_layers(ids, mask) for _ in range(2)]
    other = build(HashSettings(name, seed=4), corpus).exit_layers(ids, mask)
    assert torch.equal(same[0], same[1])
    assert not torch.equal(same[0], other)


def test_statistics_come_from_train_only():
    corpus = make_corpus()
    unseen = 150
    train = [[t for t in seq if t != unseen] for seq in corpus]
    for name in ["frequency", "mi", "random", "cluster"]:
        hash_ = build(HashSettings(name), train)
        layers = hash_.exit_layers(torch.tensor([[CLS, unseen, SEP]]), torch.ones(1, 3))
        assert layers[0, 1] == hash_.depth, name
        assert hash_.describe()["num_hashed_types"] == VOCAB - 5 - 1


@pytest.mark.parametrize("name", ["random", "random_per_occurrence", "frequency", "mi", "cluster"])
def test_specials_unseen_position_zero_and_padding(name):
    hash_ = build(HashSettings(name, depth=4, num_buckets=4))
    ids = torch.tensor([[CLS, 5, 3, 4, 999, SEP, 0], [7, 5, 6, 8, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0]])
    layers = hash_.exit_layers(ids, mask)
    assert layers.dtype == torch.int64 and layers.shape == ids.shape
    assert layers[0, [0, 2, 3, 4, 5]].tolist() == [4] * 5  # cls, mask, unk, out-of-vocab, sep
    assert layers[1, 0] == 4  # position 0 always gets the depth
    assert layers[0, 6] == 0 and layers[1, 4:].tolist() == [0, 0, 0]
    real = layers[mask.bool()]
    assert int(real.min()) >= 1 and int(real.max()) <= 4


# ----------------------------------------------------------------------------- paper mode buckets


def test_bucket_layer_spacing():
    assert bucket_layers(6, 3) == [1, 3, 5]
    assert bucket_layers(6, 6) == [1, 2, 3, 4, 5, 6]
    assert bucket_layers(4, 8) == [1, 2, 3, 4, 4, 4, 4, 4]
    hash_ = build(HashSettings("frequency", depth=6, num_buckets=3))
    description = hash_.describe()
    assert description["layer_per_bucket"] == [1, 3, 5]
    assert set(hash_.table[5:VOCAB].tolist()) == {1, 3, 5}


@pytest.mark.parametrize("name", ["frequency", "mi"])
def test_balance_types_gives_equal_type_counts(name):
    sizes = build(HashSettings(name, balance="types")).describe()["bucket_types"]
    assert len(sizes) == 6 and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("name", ["frequency", "mi"])
def test_balance_mass_gives_roughly_equal_token_mass(name):
    corpus = make_corpus(skew=0.3)
    mass = build(HashSettings(name, balance="mass"), corpus).describe()["bucket_token_mass"]
    mean = sum(mass) / len(mass)
    assert all(abs(m - mean) < 0.15 * mean for m in mass), mass


def test_frequency_most_frequent_shallowest():
    corpus = make_corpus()
    hash_ = build(HashSettings("frequency"), corpus)
    counts = torch.bincount(torch.tensor([t for s in corpus for t in s]), minlength=VOCAB)
    types = torch.arange(5, VOCAB)
    by_freq = types[torch.sort(counts[types], descending=True, stable=True).indices]
    layers = hash_.table[by_freq]
    assert layers[0] == 1
    assert bool((layers[1:] >= layers[:-1]).all())
    assert hash_.describe()["bucket_token_mass"][0] > 2 * hash_.describe()["bucket_token_mass"][-1]


# ----------------------------------------------------------------------------- mutual information


def test_mi_three_classes_predictive_token_shallowest():
    generator = torch.Generator().manual_seed(1)
    corpus, labels = [], []
    for i in range(600):
        label = i % 3
        body = torch.randint(20, 120, (10,), generator=generator).tolist()
        if label == 2:
            body[3] = 10  # token 10 occurs exactly in the class-2 examples
        corpus.append([CLS, *body, SEP])
        labels.append(label)
    hash_ = build(HashSettings("mi"), corpus, labels, num_labels=3)
    mi = mutual_information(torch.tensor([t for s in corpus for t in s]),
                            torch.tensor([y for s, y in zip(corpus, labels) for _ in s]), VOCAB, 3)
    assert int(mi[20:120].argmax()) + 20 != 10 and float(mi[10]) > float(mi[20:120].max())
    assert hash_.table[10] == 1


def test_mi_regression_uses_quantile_bins():
    generator = torch.Generator().manual_seed(2)
    corpus, targets = [], []
    for i in range(500):
        target = float(torch.rand(1, generator=generator)) * 5
        body = torch.randint(20, 120, (8,), generator=generator).tolist()
        if target > 4:  # the top quantile bin
            body[0] = 10
        corpus.append([CLS, *body, SEP])
        targets.append(target)
    hash_ = build(HashSettings("mi", mi_bins=5), corpus, targets, num_labels=1, is_regression=True)
    assert hash_.table[10] == 1


def test_mi_hand_computed_counts_every_occurrence():
    # example A (label 0): 5 5 6 ; example B (label 1): 5 7 -> 5 occurrences
    ids = torch.tensor([5, 5, 6, 5, 7])
    classes = torch.tensor([0, 0, 0, 1, 1])
    mi = mutual_information(ids, classes, 10, 2)
    p_y = torch.tensor([3 / 5, 2 / 5], dtype=torch.float64)
    expected_5 = 2 / 5 * math.log((2 / 5) / (3 / 5 * p_y[0])) + 1 / 5 * math.log((1 / 5) / (3 / 5 * p_y[1]))
    assert mi[5] == pytest.approx(expected_5)
    assert mi[6] == pytest.approx(1 / 5 * math.log(1 / p_y[0]))
    assert mi[7] == pytest.approx(1 / 5 * math.log(1 / p_y[1]))
    assert mi[8] == 0


# ----------------------------------------------------------------------------- cluster


def three_clusters() -> tuple[torch.Tensor, torch.Tensor]:
    """A: 10 points of norm ~10 (sum 100); B: 100 of norm ~2 (sum 200); C: 5 of norm ~50 (sum 250)."""
    generator = torch.Generator().manual_seed(0)
    sizes, norms = [10, 100, 5], [10.0, 2.0, 50.0]
    directions = torch.eye(3)
    points, truth = [], []
    for label, (size, norm) in enumerate(zip(sizes, norms)):
        points.append(norm * directions[label] + 0.01 * torch.randn(size, 3, generator=generator))
        truth += [label] * size
    return torch.cat(points), torch.tensor(truth)


def test_kmeans_recovers_separated_clusters_and_orders_by_norm_sum():
    points, truth = three_clusters()
    assign = kmeans(points, 3, 50, seed=0)
    for label in range(3):
        assert len(set(assign[truth == label].tolist())) == 1
    assert len(set(assign.tolist())) == 3
    ranks, _ = cluster_ranks(points, 3, 50, seed=0)
    assert [int(ranks[truth == label][0]) for label in range(3)] == [0, 1, 2]  # by sum, not mean


def test_cluster_uses_exactly_the_passed_embeddings():
    embeddings = torch.randn(VOCAB, 16, generator=torch.Generator().manual_seed(11))
    first = build(HashSettings("cluster"), word_embeddings=embeddings).describe()["embedding_fingerprint"]
    assert first["sum"] == pytest.approx(float(embeddings.double().sum()))
    assert first["norm"] == pytest.approx(float(embeddings.double().norm()))
    changed = embeddings.clone()
    changed[0, 0] += 1.0
    second = build(HashSettings("cluster"), word_embeddings=changed).describe()["embedding_fingerprint"]
    assert second["sum"] != first["sum"]
    with pytest.raises(ConfigError):
        build(HashSettings("cluster"), word_embeddings=None)


# ----------------------------------------------------------------------------- target mode


@pytest.mark.parametrize("name", ["frequency", "random", "mi", "cluster", "random_per_occurrence"])
@pytest.mark.parametrize("target", [1.5, 2.0, 3.0, 4.0])
def test_target_speedup_is_hit_on_train(name, target):
    corpus = make_corpus()
    hash_ = build(HashSettings(name, target_speedup=target), corpus)
    realized = flops_speedup(hash_, corpus)
    assert realized == pytest.approx(target, rel=0.03)
    assert hash_.describe()["expected_train_speedup"] == pytest.approx(target, rel=0.03)
    if target == 4.0:
        assert hash_.depth < 6
    if target == 1.5:
        assert hash_.depth == 6


def test_target_without_attending_exited_tokens():
    corpus = make_corpus()
    hash_ = build(HashSettings("frequency", target_speedup=4.0, attend_exited=False), corpus)
    assert flops_speedup(hash_, corpus, attend_exited=False) == pytest.approx(4.0, rel=0.03)
    assert hash_.describe()["attend_exited"] is False


def test_target_description():
    description = build(HashSettings("frequency", target_speedup=2.0)).describe()
    assert description["mode"] == "target" and description["target_speedup"] == 2.0
    assert len(description["layer_mass_fractions"]) == description["depth"]
    assert sum(description["layer_mass_fractions"]) == pytest.approx(1.0)
    assert description["g"] > 0 and len(description["train_exit_histogram"]) == description["depth"]


@pytest.mark.parametrize("target", [1.0, 0.5, 1000.0])
def test_impossible_targets_raise(target):
    with pytest.raises(ConfigError):
        build(HashSettings("frequency", target_speedup=target))


@pytest.mark.parametrize(
    "settings",
    [
        HashSettings("nope"),
        HashSettings("frequency", balance="tokens"),
        HashSettings("frequency", num_buckets=0),
        HashSettings("frequency", depth=7),
        HashSettings("frequency", depth=0),
    ],
)
def test_invalid_settings_raise(settings):
    with pytest.raises(ConfigError):
        build(settings)


# ----------------------------------------------------------------------------- per occurrence, cache


def test_random_per_occurrence_reproducible_and_varies_across_calls():
    corpus = make_corpus()
    ids, mask = pad(corpus[:100])
    first = build(HashSettings("random_per_occurrence", seed=5), corpus)
    second = build(HashSettings("random_per_occurrence", seed=5), corpus)
    call_1, call_2 = first.exit_layers(ids, mask), first.exit_layers(ids, mask)
    assert not torch.equal(call_1, call_2)
    assert torch.equal(call_1, second.exit_layers(ids, mask))
    assert bool((call_1[:, 0] == first.depth).all())


def test_cache_round_trip(tmp_path):
    corpus = make_corpus()
    kwargs = dict(
        train_ids=corpus, train_labels=torch.arange(len(corpus)) % 2, num_labels=2, is_regression=False,
        vocab_size=VOCAB, special_ids=SPECIALS, word_embeddings=None, cost_model=COST,
    )
    settings = HashSettings("frequency", target_speedup=2.0)
    key = {"task": "toy", "backbone": "tiny"}
    built, loaded = load_or_build_token_hash(settings, tmp_path, key, **kwargs)
    again, loaded_again = load_or_build_token_hash(settings, tmp_path, key, **kwargs)
    assert (loaded, loaded_again) == (False, True)
    assert torch.equal(built.table, again.table) and again.describe() == built.describe()
    _, other = load_or_build_token_hash(HashSettings("frequency", target_speedup=3.0), tmp_path, key, **kwargs)
    assert other is False
