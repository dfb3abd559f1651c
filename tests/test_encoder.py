"""The multi-exit encoder: exact against transformers, batch/padding invariant, really skipping tokens."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import BertForSequenceClassification

from hashee.core.encoder import MultiExitEncoder, make_gather


def _encoder(backbone, pooling: str = "cls") -> MultiExitEncoder:
    return MultiExitEncoder(backbone.model, pooling=pooling).eval()


def test_full_pass_equals_hf_bertmodel_on_real_text(minilm_backbone, real_batch):
    model = minilm_backbone.model.eval()
    encoder = _encoder(minilm_backbone)
    with torch.no_grad():
        ref = model(**real_batch)
        hidden = encoder.forward_full(real_batch["input_ids"], real_batch["attention_mask"], real_batch["token_type_ids"])
    real = real_batch["attention_mask"].bool()
    assert torch.allclose(hidden[real], ref.last_hidden_state[real], atol=1e-5)
    assert torch.allclose(encoder.pool(hidden, real_batch["attention_mask"]), ref.pooler_output, atol=1e-5)


def test_mean_pooling_is_the_pooler_on_the_mean_of_real_tokens(minilm_backbone, real_batch):
    """sentence-transformers' mean pooling (real tokens only) of transformers' states, then dense + tanh."""
    model = minilm_backbone.model.eval()
    encoder = _encoder(minilm_backbone, "mean")
    mask = real_batch["attention_mask"]
    assert bool((mask == 0).any()), "the batch must contain padding for this test to mean anything"
    with torch.no_grad():
        ref = model(**real_batch).last_hidden_state
        hidden = encoder.forward_full(real_batch["input_ids"], mask, real_batch["token_type_ids"])
        pooled = encoder.pool(hidden, mask)
    for row in range(mask.shape[0]):
        mean = ref[row, : int(mask[row].sum())].mean(dim=0)
        expected = torch.tanh(model.pooler.dense(mean))
        assert torch.allclose(pooled[row], expected, atol=1e-5)


def test_token_exits_at_last_layer_equal_hf_sequence_classification(minilm_backbone, real_batch):
    """Every token exiting at layer L reproduces BertForSequenceClassification's logits."""
    config = copy.deepcopy(minilm_backbone.model.config)
    config.num_labels = 3
    clf = BertForSequenceClassification(config).eval()
    clf.bert.load_state_dict(minilm_backbone.model.state_dict())
    encoder = MultiExitEncoder(clf.bert).eval()
    real = real_batch["attention_mask"].bool()
    exits = torch.where(real, config.num_hidden_layers, 0)
    with torch.no_grad():
        ref = clf(**real_batch).logits
        hidden = encoder.forward_token_exits(real_batch["input_ids"], real_batch["attention_mask"], exits,
                                             config.num_hidden_layers, real_batch["token_type_ids"])
        ours = clf.classifier(encoder.pool(hidden, real_batch["attention_mask"]))
    assert torch.allclose(ours, ref, atol=1e-5)


def _random_exits(mask: torch.Tensor, depth: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    exits = torch.randint(1, depth + 1, mask.shape, generator=gen)
    exits[:, 0] = depth
    return torch.where(mask.bool(), exits, 0)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("attend", [True, False])
def test_logits_do_not_depend_on_batch_companions_or_padding(minilm_backbone, real_batch, attend, pooling):
    encoder = _encoder(minilm_backbone, pooling)
    ids, mask, types = real_batch["input_ids"], real_batch["attention_mask"], real_batch["token_type_ids"]
    exits = _random_exits(mask, 6, seed=1)
    with torch.no_grad():
        together = encoder.pool(encoder.forward_token_exits(ids, mask, exits, 6, types, attend_exited=attend), mask)
        for row in range(ids.shape[0]):
            n = int(mask[row].sum())
            # alone, without padding
            alone = encoder.pool(encoder.forward_token_exits(ids[row:row + 1, :n], mask[row:row + 1, :n],
                                                             exits[row:row + 1, :n], 6, types[row:row + 1, :n],
                                                             attend_exited=attend), mask[row:row + 1, :n])
            assert torch.allclose(alone[0], together[row], atol=1e-5)
            # with extra padding of garbage ids
            pad = torch.full((1, 7), 999)
            padded_ids = torch.cat([ids[row:row + 1, :n], pad], dim=1)
            padded_mask = torch.cat([mask[row:row + 1, :n], torch.zeros(1, 7, dtype=mask.dtype)], dim=1)
            padded_exits = torch.cat([exits[row:row + 1, :n], torch.zeros(1, 7, dtype=exits.dtype)], dim=1)
            more = encoder.pool(encoder.forward_token_exits(padded_ids, padded_mask, padded_exits, 6,
                                                            torch.zeros_like(padded_ids), attend_exited=attend),
                               padded_mask)
            assert torch.allclose(more[0], together[row], atol=1e-5)


def test_exited_tokens_keep_the_state_of_their_exit_layer(tiny_backbone):
    encoder = _encoder(tiny_backbone)
    torch.manual_seed(0)
    ids = torch.randint(1000, 2000, (3, 9))
    mask = torch.ones_like(ids)
    mask[2, 6:] = 0
    exits = _random_exits(mask, 4, seed=3)
    with torch.no_grad():
        final = encoder.forward_token_exits(ids, mask, exits, 4)
        for layer in range(1, 5):
            # run the same exits but stop at `layer`: tokens with exit == layer are final there
            upto = encoder.forward_token_exits(ids, mask, exits.clamp(max=layer), layer)
            done = exits == layer
            assert torch.allclose(final[done], upto[done], atol=1e-6)


def test_attend_and_drop_differ_and_drop_ignores_exited_tokens(tiny_backbone):
    encoder = _encoder(tiny_backbone)
    torch.manual_seed(0)
    ids = torch.randint(1000, 2000, (2, 10))
    mask = torch.ones_like(ids)
    exits = torch.ones_like(ids)
    exits[:, 0] = 4  # only [CLS] runs past layer 1
    with torch.no_grad():
        attend = encoder.forward_token_exits(ids, mask, exits, 4, attend_exited=True)[:, 0]
        drop = encoder.forward_token_exits(ids, mask, exits, 4, attend_exited=False)[:, 0]
        assert not torch.allclose(attend, drop, atol=1e-4)
        # drop: after layer 1, [CLS] attends to itself only
        hidden = encoder.layer(0, encoder.embed(ids), make_gather(mask.bool()))
        cls_only = torch.zeros_like(mask, dtype=torch.bool)
        cls_only[:, 0] = True
        for index in range(1, 4):
            hidden = encoder.layer(index, hidden, make_gather(cls_only))
        assert torch.allclose(drop, hidden[:, 0], atol=1e-6)
        # attend: the frozen layer-1 states of the other tokens are keys/values in layers 2-4
        hidden = encoder.layer(0, encoder.embed(ids), make_gather(mask.bool()))
        for index in range(1, 4):
            hidden = encoder.layer(index, hidden, make_gather(cls_only, mask.bool()))
        assert torch.allclose(attend, hidden[:, 0], atol=1e-6)


def test_gather_computes_only_active_tokens():
    q = torch.tensor([[1, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    kv = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    plan = make_gather(q, kv)
    assert plan.q_flat.tolist() == [0, 1, 3, 4]
    assert plan.rows == 2 and plan.q_max == 3 and plan.kv_max == 4  # the row with no query is skipped
    assert plan.kv_flat.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert plan.key_mask[:, 0, 0].tolist() == [[True] * 4, [True, True, True, False]]


@pytest.mark.parametrize("kernel", ["math", "bmm", "auto"])
@pytest.mark.parametrize("attend_exited", [True, False])
def test_attention_kernels_match_sdpa(minilm_backbone, real_batch, kernel, attend_exited):
    """Every attention kernel gives SDPA's hidden states on real weights, with keys = every real token or the queries."""
    encoder = _encoder(minilm_backbone)
    exits = _random_exits(real_batch["attention_mask"], 6, seed=2)
    args = (real_batch["input_ids"], real_batch["attention_mask"], exits, 6, real_batch["token_type_ids"], attend_exited)
    with torch.no_grad():
        encoder.attention_impl = "sdpa"
        sdpa = encoder.forward_token_exits(*args)
        encoder.attention_impl = kernel
        other = encoder.forward_token_exits(*args)
    real = real_batch["attention_mask"].bool()
    assert torch.allclose(sdpa[real], other[real], atol=1e-5)


def test_gradients_flow_through_gathered_layers(tiny_backbone):
    encoder = MultiExitEncoder(copy.deepcopy(tiny_backbone.model)).train()
    ids = torch.randint(1000, 2000, (2, 6))
    mask = torch.ones_like(ids)
    exits = _random_exits(mask, 4, seed=0)
    encoder.pool(encoder.forward_token_exits(ids, mask, exits, 4), mask).sum().backward()
    assert encoder.layers[3].attention.self.query.weight.grad is not None
    assert encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_other_bert_family_models_load_unchanged(family):
    """A random RoBERTa (own embeddings, position offset) or BERT runs exactly as its transformers forward."""
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    sizes = dict(vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=64)
    model = (RobertaModel(RobertaConfig(**sizes, pad_token_id=1)) if family == "roberta"
             else BertModel(BertConfig(**sizes))).eval()
    ids = torch.randint(5, 120, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    ids[1, 7:] = model.config.pad_token_id
    encoder = MultiExitEncoder(model).eval()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask)
        hidden = encoder.forward_full(ids, mask)
    real = mask.bool()
    assert torch.allclose(hidden[real], ref.last_hidden_state[real], atol=1e-5)
    assert torch.allclose(encoder.pool(hidden, mask), ref.pooler_output, atol=1e-5)
