"""Token hashes for HashEE (METHODS.md section 1): map every token id to an exit layer.

A hash is built once from the TRAINING split and yields an ordering of the seen, non-special
token types from shallow to deep. Two ways to turn that ordering into exit layers:

* paper mode: ``num_buckets`` K buckets on a depth D, bucket k -> layer ``1 + k * max(1, D // K)``;
* target mode: the depth D and a one-parameter family (token mass at layer e proportional to
  ``g ** (e - 1)``) are chosen so that the FLOPs speed-up on the training tokens is close to
  ``target_speedup`` (measured with :class:`~hashee.cost.CostModel`, against all L layers).

Special ids and ids never seen in training exit at D, position 0 ([CLS]) always exits at D,
and padding gets 0.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from hashee.cache import DamagedCache, load_checked, torch_load, torch_save
from hashee.cost import CostModel
from hashee.errors import ConfigError

HASH_NAMES = ("random", "random_per_occurrence", "frequency", "mi", "cluster")
BALANCES = ("types", "mass")
CALIBRATION_SEQUENCES = 2000  # seeded sample of training sequences used to estimate speed-ups
LOG_G_BOUND = 40.0  # bisection range for log(g): exp(-40) ~ everything shallow, exp(40) ~ deep
BISECTION_STEPS = 60


@dataclass
class HashSettings:
    """One hash function and how its ordering becomes exit layers."""

    name: str  # random | random_per_occurrence | frequency | mi | cluster
    seed: int = 0
    balance: str = "types"  # types | mass   (frequency, mi)
    mi_bins: int = 5  # quantile bins of a regression target (mi)
    kmeans_iters: int = 50  # Lloyd iterations (cluster)
    num_buckets: int | None = None  # None -> depth
    depth: int | None = None  # None -> backbone depth L
    target_speedup: float | None = None  # None -> paper mode
    attend_exited: bool = True  # exited tokens stay keys/values (False: drop ablation)


# ----------------------------------------------------------------------------- the hash


class TokenHash:
    """A lookup table from token id to exit layer (or per-occurrence layer probabilities).

    ``table`` has ``vocab_size + 1`` entries; the last one serves every out-of-range id (unseen).
    For ``random_per_occurrence`` an entry of 0 means "draw a layer from ``layer_probs``".
    """

    def __init__(
        self,
        name: str,
        depth: int,
        table: torch.Tensor,
        info: dict[str, Any],
        layer_probs: torch.Tensor | None = None,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.depth = int(depth)
        self.table = table.to(torch.int64).cpu()
        self.layer_probs = None if layer_probs is None else layer_probs.to(torch.float64).cpu()
        self.seed = int(seed)
        self.info = info
        self._tables: dict[torch.device, torch.Tensor] = {}
        self.reset_generator()

    @property
    def vocab_size(self) -> int:
        return self.table.numel() - 1

    def reset_generator(self) -> None:
        """Restart the per-occurrence draws from the hash seed (a run is then reproducible)."""
        self._generator = torch.Generator().manual_seed(self.seed)

    def exit_layers(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` ids -> ``[B, n]`` int64 exit layers: 1..depth on real tokens, 0 on padding."""
        uniforms = None
        if self.layer_probs is not None:
            uniforms = torch.rand(input_ids.shape, generator=self._generator).to(input_ids.device)
        return self._lookup(input_ids, attention_mask, uniforms)

    def token_layers(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Exit layer of each id on its own, any shape (no padding, no first-position rule).

        Used for decoder tokens during generation, one step at a time; the first decoder input is
        the start token, a special id, so it runs to ``depth`` as in teacher forcing."""
        layers = self._table_on(input_ids.device)[input_ids.clamp(0, self.vocab_size)]
        if self.layer_probs is not None:
            uniforms = torch.rand(input_ids.shape, generator=self._generator).to(input_ids.device)
            drawn = draw_layers(self.layer_probs.to(input_ids.device), uniforms)
            layers = torch.where(layers == 0, drawn, layers)
        return layers

    def _lookup(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, uniforms: torch.Tensor | None
    ) -> torch.Tensor:
        """Table lookup; ``uniforms`` (same shape, in [0, 1)) drive the per-occurrence draws."""
        table = self._table_on(input_ids.device)
        layers = table[input_ids.clamp(0, self.vocab_size)]
        if uniforms is not None and self.layer_probs is not None:
            drawn = draw_layers(self.layer_probs.to(input_ids.device), uniforms)
            layers = torch.where(layers == 0, drawn, layers)
        layers[..., 0] = self.depth
        return layers * (attention_mask != 0)

    def _table_on(self, device: torch.device) -> torch.Tensor:
        if device not in self._tables:
            self._tables[device] = self.table.to(device)
        return self._tables[device]

    def describe(self) -> dict[str, Any]:
        """JSON-serializable summary (see :func:`build_token_hash` for the keys)."""
        return json.loads(json.dumps(self.info))

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "depth": self.depth,
            "table": self.table.clone(),
            "layer_probs": None if self.layer_probs is None else self.layer_probs.clone(),
            "seed": self.seed,
            "info_json": json.dumps(self.info),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "TokenHash":
        return cls(
            name=state["name"],
            depth=state["depth"],
            table=state["table"],
            info=json.loads(state["info_json"]),
            layer_probs=state["layer_probs"],
            seed=state["seed"],
        )


def draw_layers(layer_probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Layers 1..D drawn by inverse CDF: ``uniforms`` in [0, 1) -> layer with ``P = layer_probs``."""
    cdf = torch.cumsum(layer_probs, 0)
    cdf = cdf / cdf[-1]
    drawn = torch.searchsorted(cdf[:-1].contiguous(), uniforms.to(cdf.dtype).contiguous(), right=True)
    return drawn + 1


# ----------------------------------------------------------------------------- settings


def validate_settings(settings: HashSettings, num_layers: int) -> None:
    """Raise :class:`ConfigError` (one line) on an impossible setting."""
    if settings.name not in HASH_NAMES:
        raise ConfigError(f"hash.name={settings.name!r} is unknown; choose one of {', '.join(HASH_NAMES)}")
    if settings.balance not in BALANCES:
        raise ConfigError(f"hash.balance={settings.balance!r} is unknown; choose one of {', '.join(BALANCES)}")
    if settings.num_buckets is not None and settings.num_buckets < 1:
        raise ConfigError(f"hash.num_buckets={settings.num_buckets} must be >= 1")
    if settings.depth is not None and not 1 <= settings.depth <= num_layers:
        raise ConfigError(f"hash depth={settings.depth} must be in 1..{num_layers} (backbone layers)")
    if settings.target_speedup is not None and not settings.target_speedup > 1:
        raise ConfigError(f"target_speedup={settings.target_speedup} must be > 1")
    if settings.mi_bins < 2:
        raise ConfigError(f"hash.mi_bins={settings.mi_bins} must be >= 2")
    if settings.kmeans_iters < 1:
        raise ConfigError(f"hash.kmeans_iters={settings.kmeans_iters} must be >= 1")


# ----------------------------------------------------------------------------- training statistics


@dataclass
class TrainTokens:
    """The training split flattened: token ids, lengths, per-example labels, and type counts."""

    flat_ids: torch.Tensor  # [T] int64, out-of-range ids mapped to vocab_size
    lengths: torch.Tensor  # [N] int64
    labels: torch.Tensor  # [N] float64
    counts: torch.Tensor  # [vocab_size] int64 occurrences
    protected: torch.Tensor  # [vocab_size + 1] bool: special, unseen or out of range -> depth
    vocab_size: int

    @property
    def hashed_types(self) -> torch.Tensor:
        """Ids of the seen, non-special types (ascending): the ones a hash orders."""
        return torch.nonzero(~self.protected[:-1]).squeeze(1)


def collect_train_tokens(
    train_ids: list[list[int]], train_labels: Sequence[float] | torch.Tensor, vocab_size: int, special_ids: set[int]
) -> TrainTokens:
    """Flatten the training sequences and count types; specials and unseen ids are protected."""
    if len(train_ids) == 0:
        raise ConfigError("cannot build a token hash from an empty training split")
    lengths = torch.tensor([len(seq) for seq in train_ids], dtype=torch.int64)
    flat = torch.tensor(list(itertools.chain.from_iterable(train_ids)), dtype=torch.int64)
    flat = torch.where((flat >= 0) & (flat < vocab_size), flat, torch.full_like(flat, vocab_size))
    labels = torch.as_tensor(train_labels, dtype=torch.float64).reshape(-1)
    if labels.numel() != len(train_ids):
        raise ConfigError(f"{labels.numel()} training labels for {len(train_ids)} training sequences")
    counts = torch.bincount(flat, minlength=vocab_size + 1)[:vocab_size]
    protected = torch.ones(vocab_size + 1, dtype=torch.bool)
    protected[:vocab_size] = counts == 0
    specials = torch.tensor([i for i in special_ids if 0 <= i < vocab_size], dtype=torch.int64)
    protected[specials] = True
    return TrainTokens(flat, lengths, labels, counts, protected, vocab_size)


# ----------------------------------------------------------------------------- orderings


def stable_sort_desc(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``ids`` (ascending) sorted by ``scores`` descending, ties kept by id."""
    order = torch.sort(scores, descending=True, stable=True).indices
    return ids[order]


def frequency_ordering(tokens: TrainTokens) -> torch.Tensor:
    """Hashed types by training frequency, descending (ties by id)."""
    types = tokens.hashed_types
    return stable_sort_desc(tokens.counts[types].to(torch.float64), types)


def label_classes(tokens: TrainTokens, num_labels: int, is_regression: bool, mi_bins: int) -> tuple[torch.Tensor, int]:
    """Per-example class ids for MI: the label itself, or its quantile bin for regression."""
    if is_regression:
        inner = torch.linspace(0, 1, mi_bins + 1, dtype=torch.float64)[1:-1]
        edges = torch.quantile(tokens.labels, inner)
        return torch.bucketize(tokens.labels, edges, right=True), mi_bins
    classes = tokens.labels.round().to(torch.int64)
    if bool(((classes < 0) | (classes >= num_labels)).any()) or not torch.equal(classes.double(), tokens.labels):
        raise ConfigError(f"mi hash: classification labels must be integers in 0..{num_labels - 1}")
    return classes, num_labels


def mutual_information(token_ids: torch.Tensor, token_classes: torch.Tensor, vocab_size: int, num_classes: int) -> torch.Tensor:
    """Per-type MI(x) = sum_y p(x,y) log(p(x,y) / (p(x) p(y))), over every token occurrence."""
    joint = torch.bincount(token_ids * num_classes + token_classes, minlength=(vocab_size + 1) * num_classes)
    joint = joint.reshape(vocab_size + 1, num_classes).to(torch.float64)
    p_xy = joint / joint.sum()
    p_x = p_xy.sum(1, keepdim=True)
    p_y = p_xy.sum(0, keepdim=True)
    ratio = torch.where(p_xy > 0, p_xy / (p_x * p_y).clamp_min(1e-300), torch.ones_like(p_xy))
    return (p_xy * torch.log(ratio)).sum(1)[:vocab_size]


def mi_ordering(tokens: TrainTokens, num_labels: int, is_regression: bool, mi_bins: int) -> torch.Tensor:
    """Hashed types by MI with the label, descending (ties by id)."""
    classes, num_classes = label_classes(tokens, num_labels, is_regression, mi_bins)
    token_classes = torch.repeat_interleave(classes, tokens.lengths)
    mi = mutual_information(tokens.flat_ids, token_classes, tokens.vocab_size, num_classes)
    types = tokens.hashed_types
    return stable_sort_desc(mi[types], types)


def random_ordering(tokens: TrainTokens, seed: int) -> torch.Tensor:
    """Hashed types in a seeded random order."""
    types = tokens.hashed_types
    generator = torch.Generator().manual_seed(seed)
    return types[torch.randperm(types.numel(), generator=generator)]


# ----------------------------------------------------------------------------- k-means (cluster)


def embedding_fingerprint(embeddings: torch.Tensor) -> dict[str, Any]:
    """Sum, Frobenius norm and shape of the matrix: lets a caller check which weights were used."""
    e = embeddings.detach().to(torch.float64)
    return {"shape": list(e.shape), "sum": float(e.sum()), "norm": float(e.norm())}


def squared_distances(points: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """``[V, k]`` squared Euclidean distances."""
    d2 = points.pow(2).sum(1, keepdim=True) - 2 * points @ centers.T + centers.pow(2).sum(1)
    return d2.clamp_min(0)


def kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Seeded k-means++ initial centers."""
    first = int(torch.randint(points.shape[0], (1,), generator=generator))
    centers = [points[first]]
    closest = squared_distances(points, points[first : first + 1]).squeeze(1)
    for _ in range(1, k):
        if float(closest.sum()) > 0:
            index = int(torch.multinomial(closest.double(), 1, generator=generator))
        else:
            index = int(torch.randint(points.shape[0], (1,), generator=generator))
        centers.append(points[index])
        closest = torch.minimum(closest, squared_distances(points, points[index : index + 1]).squeeze(1))
    return torch.stack(centers)


def kmeans(points: torch.Tensor, k: int, iters: int, seed: int) -> torch.Tensor:
    """Lloyd's k-means with k-means++ init; returns the cluster id of every row."""
    points = points.detach().to(torch.float32)
    generator = torch.Generator().manual_seed(seed)
    centers = kmeans_plus_plus(points, k, generator)
    assign = squared_distances(points, centers).argmin(1)
    for _ in range(iters):
        sums = torch.zeros_like(centers).index_add_(0, assign, points)
        sizes = torch.bincount(assign, minlength=k)
        centers = torch.where(sizes[:, None] > 0, sums / sizes.clamp_min(1)[:, None], centers)
        new_assign = squared_distances(points, centers).argmin(1)
        if torch.equal(new_assign, assign):
            break
        assign = new_assign
    return assign


def cluster_ranks(embeddings: torch.Tensor, k: int, iters: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster rank (0 = smallest sum of member L2 norms) and L2 norm of every row."""
    assign = kmeans(embeddings, k, iters, seed)
    norms = embeddings.detach().to(torch.float64).norm(dim=1)
    norm_sums = torch.zeros(k, dtype=torch.float64).index_add_(0, assign, norms)
    rank_of_cluster = torch.empty(k, dtype=torch.int64)
    rank_of_cluster[torch.sort(norm_sums, stable=True).indices] = torch.arange(k)
    return rank_of_cluster[assign], norms


def cluster_ordering(tokens: TrainTokens, ranks: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """Hashed types by cluster rank, then embedding norm (both ascending)."""
    types = tokens.hashed_types
    by_norm = types[torch.sort(norms[types], stable=True).indices]
    return by_norm[torch.sort(ranks[by_norm], stable=True).indices]


def check_embeddings(embeddings: torch.Tensor | None, vocab_size: int, k: int) -> torch.Tensor:
    """The first ``vocab_size`` rows of the word-embedding matrix, or a ConfigError."""
    if embeddings is None:
        raise ConfigError("hash.name=cluster needs the backbone's word embeddings (got None)")
    if embeddings.dim() != 2 or embeddings.shape[0] < vocab_size:
        raise ConfigError(f"word embeddings of shape {tuple(embeddings.shape)} do not cover vocab size {vocab_size}")
    if vocab_size < k:
        raise ConfigError(f"cannot form {k} clusters from {vocab_size} embeddings")
    return embeddings.detach().cpu()[:vocab_size]


# ----------------------------------------------------------------------------- paper mode


def bucket_layers(depth: int, num_buckets: int) -> list[int]:
    """Evenly spaced exit layers: bucket k -> 1 + k * max(1, D // K), clipped to D."""
    interval = max(1, depth // num_buckets)
    return [min(depth, 1 + k * interval) for k in range(num_buckets)]


def split_by_types(num_types: int, num_buckets: int) -> torch.Tensor:
    """Bucket of each position in an ordering: contiguous chunks of equal type counts (+-1)."""
    return torch.arange(num_types, dtype=torch.int64) * num_buckets // max(num_types, 1)


def split_by_mass(mass: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Bucket of each position in an ordering so bucket b holds ~``fractions[b]`` of the mass.

    A type goes to the bucket whose cumulative-fraction interval contains its mass midpoint.
    """
    mass = mass.to(torch.float64)
    total = mass.sum().clamp_min(1e-300)
    midpoints = (torch.cumsum(mass, 0) - mass / 2) / total
    bounds = torch.cumsum(fractions.to(torch.float64), 0)
    bounds = bounds / bounds[-1]
    buckets = torch.searchsorted(bounds[:-1].contiguous(), midpoints.contiguous(), right=True)
    return buckets.clamp(max=fractions.numel() - 1)


def ordering_buckets(ordering: torch.Tensor, counts: torch.Tensor, num_buckets: int, balance: str) -> torch.Tensor:
    """Bucket per position of an ordering (frequency, mi) under the ``balance`` rule."""
    if balance == "types":
        return split_by_types(ordering.numel(), num_buckets)
    return split_by_mass(counts[ordering], torch.ones(num_buckets, dtype=torch.float64))


def protected_table(tokens: TrainTokens, depth: int) -> torch.Tensor:
    """Table with protected ids at ``depth`` and 0 (to be filled) elsewhere."""
    return torch.where(tokens.protected, depth, 0).to(torch.int64)


def table_from_buckets(tokens: TrainTokens, depth: int, bucket_of_type: torch.Tensor, layers: list[int]) -> torch.Tensor:
    """Table from a bucket per vocabulary id; protected ids stay at ``depth``."""
    table = protected_table(tokens, depth)
    type_layers = torch.tensor(layers, dtype=torch.int64)[bucket_of_type]
    hashed = tokens.hashed_types
    table[hashed] = type_layers[hashed]
    return table


# ----------------------------------------------------------------------------- speed-up estimation


@dataclass
class CalibrationSample:
    """A seeded, padded sample of training sequences and its full-model FLOPs (all L layers)."""

    input_ids: torch.Tensor  # [B, n]
    attention_mask: torch.Tensor  # [B, n]
    uniforms: torch.Tensor  # [B, n] fixed draws for per-occurrence hashes (common random numbers)
    full_flops: float


def calibration_sample(train_ids: list[list[int]], vocab_size: int, cost_model: CostModel, seed: int) -> CalibrationSample:
    """Up to :data:`CALIBRATION_SEQUENCES` training sequences, padded (ids out of range -> unseen)."""
    generator = torch.Generator().manual_seed(seed)
    picks = range(len(train_ids))
    if len(train_ids) > CALIBRATION_SEQUENCES:
        picks = torch.randperm(len(train_ids), generator=generator)[:CALIBRATION_SEQUENCES].tolist()
    rows = [train_ids[i] for i in picks]
    width = max(1, max(len(r) for r in rows))
    ids = torch.zeros(len(rows), width, dtype=torch.int64)
    mask = torch.zeros(len(rows), width, dtype=torch.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
        mask[i, : len(row)] = 1
    ids = torch.where((ids >= 0) & (ids < vocab_size), ids, vocab_size)
    uniforms = torch.rand(ids.shape, generator=generator)
    full = float(cost_model.full_flops(mask.sum(1)).sum())
    return CalibrationSample(ids, mask, uniforms, full)


def speedup(hash_: TokenHash, sample: CalibrationSample, cost_model: CostModel, attend_exited: bool) -> float:
    """FLOPs speed-up of ``hash_`` on the sample, against the full model (all L layers + head)."""
    layers = hash_._lookup(sample.input_ids, sample.attention_mask, sample.uniforms)
    cost = cost_model.token_exit_flops(layers, hash_.depth, attend_exited).sum()
    return sample.full_flops / float(cost)


def geometric_fractions(depth: int, log_g: float) -> torch.Tensor:
    """Share of token mass per exit layer 1..D, proportional to g^(e-1)."""
    logits = torch.arange(depth, dtype=torch.float64) * log_g
    return torch.softmax(logits, 0)


# ----------------------------------------------------------------------------- target mode


@dataclass
class TargetFamily:
    """Builds a hash of depth D for a given log(g) from the hash's ordering."""

    name: str
    tokens: TrainTokens
    ordering: torch.Tensor | None  # None for random_per_occurrence
    seed: int

    def make(self, depth: int, log_g: float) -> TokenHash:
        fractions = geometric_fractions(depth, log_g)
        if self.ordering is None:
            return TokenHash(self.name, depth, protected_table(self.tokens, depth), {}, fractions, self.seed)
        table = protected_table(self.tokens, depth)
        buckets = split_by_mass(self.tokens.counts[self.ordering], fractions)
        table[self.ordering] = buckets + 1
        return TokenHash(self.name, depth, table, {})


def search_log_g(
    family: TargetFamily, depth: int, target: float, sample: CalibrationSample, cost_model: CostModel, attend_exited: bool
) -> tuple[float, float] | None:
    """Bisection on log(g) for ``target`` at ``depth``: (log_g, speed-up), or None if unreachable.

    The speed-up falls as g grows, in steps (types move between layers whole); the closest
    evaluated point is returned.
    """

    def measure(log_g: float) -> float:
        return speedup(family.make(depth, log_g), sample, cost_model, attend_exited)

    low, high = -LOG_G_BOUND, LOG_G_BOUND
    best = (low, measure(low))
    if best[1] < target:
        return None
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        value = measure(middle)
        if abs(value - target) < abs(best[1] - target):
            best = (middle, value)
        if value >= target:
            low = middle
        else:
            high = middle
    return best


def calibrate(
    family: TargetFamily, max_depth: int, target: float, sample: CalibrationSample, cost_model: CostModel, attend_exited: bool
) -> tuple[int, float, float]:
    """Largest depth <= ``max_depth`` at which ``target`` is reachable, and its (log_g, speed-up)."""
    for depth in range(max_depth, 0, -1):
        found = search_log_g(family, depth, target, sample, cost_model, attend_exited)
        if found is not None:
            return depth, found[0], found[1]
    raise ConfigError(
        f"target_speedup={target} is unreachable with hash {family.name!r} even at depth 1 "
        f"(attend_exited={attend_exited}); lower the target"
    )


# ----------------------------------------------------------------------------- description


def train_exit_histogram(hash_: TokenHash, tokens: TrainTokens) -> list[int]:
    """Token counts per exit layer 1..D over the whole training split (index e - 1)."""
    layers = hash_.table[tokens.flat_ids]
    if hash_.layer_probs is not None:
        uniforms = torch.rand(layers.shape, generator=torch.Generator().manual_seed(hash_.seed + 1))
        layers = torch.where(layers == 0, draw_layers(hash_.layer_probs, uniforms), layers)
    starts = torch.cumsum(tokens.lengths, 0) - tokens.lengths
    layers[starts[tokens.lengths > 0]] = hash_.depth
    return torch.bincount(layers, minlength=hash_.depth + 1)[1:].tolist()


def type_mass_by_layer(hash_: TokenHash, tokens: TrainTokens) -> tuple[list[int], list[int]]:
    """Number of hashed types and their training occurrences per exit layer 1..D (consistent hashes)."""
    types = tokens.hashed_types
    layers = hash_.table[types]
    type_counts = torch.bincount(layers, minlength=hash_.depth + 1)[1:]
    mass = torch.bincount(layers, weights=tokens.counts[types].double(), minlength=hash_.depth + 1)[1:]
    return type_counts.tolist(), [int(m) for m in mass.tolist()]


def bucket_sizes(bucket_of_type: torch.Tensor, tokens: TrainTokens, num_buckets: int) -> tuple[list[int], list[int]]:
    """Number of hashed types and their training occurrences per bucket."""
    types = tokens.hashed_types
    buckets = bucket_of_type[types]
    type_counts = torch.bincount(buckets, minlength=num_buckets)
    mass = torch.bincount(buckets, weights=tokens.counts[types].double(), minlength=num_buckets)
    return type_counts.tolist(), [int(m) for m in mass.tolist()]


# ----------------------------------------------------------------------------- building


def paper_buckets(
    settings: HashSettings, tokens: TrainTokens, num_buckets: int, ordering_args: dict[str, Any]
) -> tuple[torch.Tensor | None, dict[str, Any]]:
    """Bucket per vocabulary id for a consistent hash (None for random_per_occurrence), plus extras."""
    vocab_size, name = tokens.vocab_size, settings.name
    if name == "random_per_occurrence":
        return None, {}
    if name == "random":
        generator = torch.Generator().manual_seed(settings.seed)
        return torch.randint(num_buckets, (vocab_size,), generator=generator), {}
    if name == "cluster":
        ranks, _ = cluster_ranks(ordering_args["embeddings"], num_buckets, settings.kmeans_iters, settings.seed)
        return ranks, {"embedding_fingerprint": ordering_args["fingerprint"]}
    ordering = type_ordering(settings, tokens, ordering_args)
    bucket_of_type = torch.zeros(vocab_size, dtype=torch.int64)
    bucket_of_type[ordering] = ordering_buckets(ordering, tokens.counts, num_buckets, settings.balance)
    return bucket_of_type, {}


def type_ordering(settings: HashSettings, tokens: TrainTokens, ordering_args: dict[str, Any]) -> torch.Tensor | None:
    """Shallow-to-deep ordering of the hashed types (None for random_per_occurrence)."""
    name = settings.name
    if name == "random_per_occurrence":
        return None
    if name == "random":
        return random_ordering(tokens, settings.seed)
    if name == "frequency":
        return frequency_ordering(tokens)
    if name == "mi":
        return mi_ordering(tokens, ordering_args["num_labels"], ordering_args["is_regression"], settings.mi_bins)
    ranks, norms = cluster_ranks(ordering_args["embeddings"], ordering_args["k"], settings.kmeans_iters, settings.seed)
    return cluster_ordering(tokens, ranks, norms)


def build_paper_hash(
    settings: HashSettings, tokens: TrainTokens, num_layers: int, ordering_args: dict[str, Any]
) -> tuple[TokenHash, dict[str, Any]]:
    """Paper mode: K buckets on depth D, evenly spaced exit layers."""
    depth = settings.depth or num_layers
    num_buckets = settings.num_buckets or depth
    layers = bucket_layers(depth, num_buckets)
    bucket_of_type, extras = paper_buckets(settings, tokens, num_buckets, ordering_args)
    if bucket_of_type is None:
        probs = torch.zeros(depth, dtype=torch.float64)
        probs.index_add_(0, torch.tensor(layers) - 1, torch.full((num_buckets,), 1.0 / num_buckets, dtype=torch.float64))
        hash_ = TokenHash(settings.name, depth, protected_table(tokens, depth), {}, probs, settings.seed)
        hashed_mass = int(tokens.counts[tokens.hashed_types].sum())
        types = [tokens.hashed_types.numel() / num_buckets] * num_buckets
        extras = {"bucket_types": types, "bucket_token_mass": [hashed_mass / num_buckets] * num_buckets}
    else:
        hash_ = TokenHash(settings.name, depth, table_from_buckets(tokens, depth, bucket_of_type, layers), {})
        types, mass = bucket_sizes(bucket_of_type, tokens, num_buckets)
        extras = {**extras, "bucket_types": types, "bucket_token_mass": mass}
    info = {"mode": "paper", "num_buckets": num_buckets, "layer_per_bucket": layers, **extras}
    return hash_, info


def build_target_hash(
    settings: HashSettings,
    tokens: TrainTokens,
    num_layers: int,
    ordering_args: dict[str, Any],
    sample: CalibrationSample,
    cost_model: CostModel,
) -> tuple[TokenHash, dict[str, Any]]:
    """Target mode: the depth and g whose train FLOPs speed-up is closest to the target."""
    ordering = type_ordering(settings, tokens, ordering_args)
    family = TargetFamily(settings.name, tokens, ordering, settings.seed)
    max_depth = settings.depth or num_layers
    target = float(settings.target_speedup)
    depth, log_g, _ = calibrate(family, max_depth, target, sample, cost_model, settings.attend_exited)
    hash_ = family.make(depth, log_g)
    fractions = geometric_fractions(depth, log_g).tolist()
    info: dict[str, Any] = {
        "mode": "target",
        "num_buckets": depth,
        "layer_per_bucket": list(range(1, depth + 1)),
        "g": math.exp(log_g),
        "log_g": log_g,
        "layer_mass_fractions": fractions,
    }
    if ordering is None:
        hashed_mass = int(tokens.counts[tokens.hashed_types].sum())
        info["bucket_types"] = [tokens.hashed_types.numel() * f for f in fractions]
        info["bucket_token_mass"] = [hashed_mass * f for f in fractions]
    else:
        info["bucket_types"], info["bucket_token_mass"] = type_mass_by_layer(hash_, tokens)
    if settings.name == "cluster":
        info["embedding_fingerprint"] = ordering_args["fingerprint"]
    return hash_, info


def build_token_hash(
    settings: HashSettings,
    *,
    train_ids: list[list[int]],
    train_labels: Sequence[float] | torch.Tensor,
    num_labels: int,
    is_regression: bool,
    vocab_size: int,
    special_ids: set[int],
    word_embeddings: torch.Tensor | None,
    cost_model: CostModel,
) -> TokenHash:
    """Build a hash from the TRAINING split (sequences with [CLS]/[SEP], no padding).

    ``describe()`` then holds: name, depth, mode, num_buckets, layer_per_bucket, bucket_types,
    bucket_token_mass, train_exit_histogram, expected_train_speedup, target_speedup, g (target),
    layer_mass_fractions (target), embedding_fingerprint (cluster), attend_exited, seed.
    """
    num_layers = cost_model.num_layers
    validate_settings(settings, num_layers)
    tokens = collect_train_tokens(train_ids, train_labels, vocab_size, special_ids)
    ordering_args: dict[str, Any] = {"num_labels": num_labels, "is_regression": is_regression}
    if settings.name == "cluster":
        k = settings.num_buckets or settings.depth or num_layers
        embeddings = check_embeddings(word_embeddings, vocab_size, k)
        ordering_args.update(embeddings=embeddings, fingerprint=embedding_fingerprint(word_embeddings), k=k)
    sample = calibration_sample(train_ids, vocab_size, cost_model, settings.seed)
    if settings.target_speedup is None:
        hash_, info = build_paper_hash(settings, tokens, num_layers, ordering_args)
    else:
        hash_, info = build_target_hash(settings, tokens, num_layers, ordering_args, sample, cost_model)
    hash_.seed = settings.seed
    hash_.reset_generator()
    hash_.info = {
        "name": settings.name,
        "depth": hash_.depth,
        "seed": settings.seed,
        "balance": settings.balance,
        "attend_exited": settings.attend_exited,
        "target_speedup": settings.target_speedup,
        "num_hashed_types": int(tokens.hashed_types.numel()),
        **info,
        "train_exit_histogram": train_exit_histogram(hash_, tokens),
        "expected_train_speedup": speedup(hash_, sample, cost_model, settings.attend_exited),
        "speedup_sample_sequences": int(sample.input_ids.shape[0]),
    }
    return hash_


# ----------------------------------------------------------------------------- disk cache


def cache_digest(settings: HashSettings, cache_key: dict[str, Any], build_kwargs: dict[str, Any]) -> str:
    """sha256 of the caller's key, the settings and the build inputs that are cheap to describe."""
    cost_model = build_kwargs.get("cost_model")
    embeddings = build_kwargs.get("word_embeddings")
    auto = {
        "vocab_size": build_kwargs.get("vocab_size"),
        "num_labels": build_kwargs.get("num_labels"),
        "is_regression": build_kwargs.get("is_regression"),
        "special_ids": sorted(build_kwargs.get("special_ids") or []),
        "num_train": len(build_kwargs.get("train_ids") or []),
        "cost_model": asdict(cost_model) if cost_model is not None else None,
        "embeddings": embedding_fingerprint(embeddings) if settings.name == "cluster" and embeddings is not None else None,
    }
    payload = {"key": cache_key, "settings": asdict(settings), "auto": auto}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def load_or_build_token_hash(
    settings: HashSettings, cache_dir: str | Path, cache_key: dict[str, Any], **build_kwargs: Any
) -> tuple[TokenHash, bool]:
    """The cached hash for this key if present and sound, else build and cache it (a damaged one is set aside)."""
    digest = cache_digest(settings, cache_key, build_kwargs)
    path = Path(cache_dir) / f"hash-{settings.name}-{digest[:20]}.pt"
    cached = load_checked(path, lambda p: load_token_hash(p, build_kwargs.get("vocab_size")))
    if cached is not None:
        return cached, True
    hash_ = build_token_hash(settings, **build_kwargs)
    torch_save(hash_.state_dict(), path)
    return hash_, False


def load_token_hash(path: Path, vocab_size: int | None) -> TokenHash:
    """A cached hash (tensors and plain data only); raises :class:`DamagedCache` if it does not fit the vocabulary."""
    hash_ = TokenHash.from_state_dict(torch_load(path))
    if vocab_size is not None and hash_.table.numel() != int(vocab_size) + 1:
        raise DamagedCache(f"table of {hash_.table.numel()} entries for a vocabulary of {vocab_size}")
    return hash_
