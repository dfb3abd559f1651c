"""Generation baselines (docs/methods.md section 6): static truncation and the confidence-based per-token exit.

The tiny BERT2BERT of tests/test_generation.py (d = 32, 3 + 3 layers, random weights). Its vocabulary (30,522) makes
the LM head ~70 decoder layers' worth of FLOPs, so the tests that need a confidence exit to save FLOPs use the same
model with a 128-token vocabulary (ids of random sources stay below it).
"""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import EncoderDecoderModel

from baselines.seq2seq_confidence import ConfidenceExit, top1_probability
from baselines.seq2seq_static import Seq2SeqStatic
from hashee.core.errors import ConfigError
from hashee.core.operating_points import choose_operating_point
from hashee.core.padding import pad_sequences
from hashee.data.seq2seq import IGNORE_INDEX, pad_pairs
from hashee.methods.registry import contract_of
from hashee.seq2seq.backbone import load_seq2seq_backbone
from hashee.seq2seq.generation import generate
from hashee.tasks.generation import GenerationSpec

from conftest import REAL_TEXT
from test_generation import GEN_RUN, TARGETS, TINY_S2S, text_batch

SPEC = GenerationSpec("toy", "bbc_headlines", ("rouge1", "rouge2", "rougeL"), "rougeL", "test")
OPTIM = {"lr": 1e-4, "weight_decay": 0.01, "warmup_ratio": 0.0}
GENERATION = {"max_new_tokens": 8, "num_beams": 1}
SMALL_VOCAB = 128


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per test


def tiny_backbone(**config):
    torch.manual_seed(0)
    return load_seq2seq_backbone({**TINY_S2S, "config": {**TINY_S2S["config"], **config}})


@pytest.fixture(scope="module")
def backbone():
    return tiny_backbone()


@pytest.fixture(scope="module")
def small_backbone():
    return tiny_backbone(vocab_size=SMALL_VOCAB)


def confidence(backbone, **kwargs) -> ConfidenceExit:
    return ConfidenceExit(SPEC, backbone, OPTIM, GENERATION, **kwargs).eval()


def layer_confidences(module: ConfidenceExit, batch) -> torch.Tensor:
    """Top-1 probabilities at every decoder layer below the last, over a generation where no token exits."""
    seen = []

    def record(index: int, states: torch.Tensor):
        logits = module.net.lm_head(states)
        seen.append(top1_probability(logits))
        return logits, torch.zeros(states.shape[0], dtype=torch.bool)

    with torch.no_grad():
        generate(module.net, module.cost, batch, None, None, module.depths, 8, exit_head=record)
    return torch.cat(seen)


def threshold_inside(values: torch.Tensor) -> float:
    """A threshold in the widest gap between the middle half of ``values`` (far from every value: no near-tie)."""
    ordered = torch.unique(values.double())
    middle = ordered[len(ordered) // 4: 3 * len(ordered) // 4 + 1]
    gap = int((middle[1:] - middle[:-1]).argmax())
    return float((middle[gap] + middle[gap + 1]) / 2)


def random_pairs(count: int, generator: torch.Generator) -> tuple[list[list[int]], list[list[int]]]:
    """Sources and decoder inputs ([CLS] first) of random lengths, ids below the small vocabulary."""
    sources = [[101] + torch.randint(103, SMALL_VOCAB, (int(n),), generator=generator).tolist() + [102]
               for n in torch.randint(4, 20, (count,), generator=generator)]
    targets = [[101] + torch.randint(103, SMALL_VOCAB, (int(n),), generator=generator).tolist()
               for n in torch.randint(2, 7, (count,), generator=generator)]
    return sources, targets


class ValidationOnly:
    """A data module whose validation split is ``pairs``; reading any other split fails the test."""

    def __init__(self, sources: list[list[int]], targets: list[list[int]]) -> None:
        self.sources, self.targets, self.read = sources, targets, set()

    def _split(self, split: str) -> None:
        self.read.add(split)
        assert split == "val", f"read the {split} split"

    def token_ids(self, split: str = "train", side: str = "source") -> list[list[int]]:
        self._split(split)
        return self.sources if side == "source" else self.targets

    def references(self, split: str) -> list[str]:
        self._split(split)
        return ["headline number %d" % i for i in range(len(self.targets))]

    def eval_batches(self, split: str) -> list[dict[str, torch.Tensor]]:
        self._split(split)
        rows = [{"input_ids": s, "decoder_input_ids": t, "labels": t[1:] + [102], "index": i}
                for i, (s, t) in enumerate(zip(self.sources, self.targets))]
        return [pad_pairs(rows[i:i + 4], 0) for i in range(0, len(rows), 4)]


# ----------------------------------------------------------------------------- confidence exit


def test_confidence_batched_greedy_equals_batch_one_with_exits_at_several_layers(backbone):
    module = confidence(backbone)
    batch = text_batch(backbone)  # 8 sources of different lengths
    module.threshold = threshold_inside(layer_confidences(module, batch))
    with torch.no_grad():
        batched = module.generate(batch)
        alone = []
        for row in range(len(REAL_TEXT)):
            n = int(batch["attention_mask"][row].sum())
            alone.append(module.generate({k: batch[k][row:row + 1, :n] for k in ("input_ids", "attention_mask")}))
    assert batched.tokens == [one.tokens[0] for one in alone]
    assert batched.flops == pytest.approx(sum(one.flops for one in alone), rel=1e-9)
    layers = batched.exit_layers  # row-steps ending at decoder layer 1, 2, 3
    assert layers[0] + layers[1] > 0 and layers[2] > 0, layers  # tokens exit early and at the last layer
    assert [sum(x) for x in zip(*(one.exit_layers for one in alone))] == layers


def generate_counting_flops(module, batch):
    """Greedy generation with the explicit attention kernel (visible to the counter), and the FLOPs counted."""
    module.net.attention_impl = "math"
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = module.generate(batch)
    finally:
        module.net.attention_impl = "auto"
    return out, counter.get_total_flops()


@pytest.mark.parametrize("where", ["inside", "never", "first"])
def test_confidence_flops_match_the_counter(backbone, where):
    """Analytic FLOPs of a confidence-exit generation (an LM head after every layer a token runs, the copied-up
    keys/values above its exit) == FlopCounterMode on the matrix products."""
    module = confidence(backbone)
    batch = text_batch(backbone, REAL_TEXT[2:3], TARGETS[2:3])  # one sequence: no padding in any grid
    fixed = {"never": 1.0, "first": 0.0}
    module.threshold = fixed[where] if where in fixed else threshold_inside(layer_confidences(module, batch))
    out, counted = generate_counting_flops(module, batch)
    assert counted == pytest.approx(out.flops, rel=1e-9)
    steps, depth = out.generated_tokens, module.net.decoder_layers
    if where == "never":  # every layer runs, and the head is read after each: L - 1 extra heads a token
        assert out.exit_layers == [0, 0, steps]
        assert out.flops == pytest.approx(out.flops_full + steps * (depth - 1) * module.cost.lm_head_flops)
    elif where == "first":
        assert out.exit_layers == [steps, 0, 0] and out.flops < out.flops_full
    else:
        assert sum(1 for count in out.exit_layers if count) >= 2, out.exit_layers


def test_confidence_exit_copies_the_state_up_into_the_cache(small_backbone):
    """A token that exits at layer 1 leaves its layer-1 state as key/value at layers 2 and 3 (projected with their
    weights), which is what later tokens attend to: the same cache as HashEE's decoder with that exit layer."""
    module = confidence(small_backbone, threshold=0.0)  # every token exits at layer 1
    net = module.net
    sources, targets = random_pairs(3, torch.Generator().manual_seed(2))
    batch = pad_pairs([{"input_ids": s, "decoder_input_ids": t, "labels": t, "index": i}
                       for i, (s, t) in enumerate(zip(sources, targets))], 0)
    with torch.no_grad():
        memory = net.cross_memory(net.encode(batch["input_ids"], batch["attention_mask"]), batch["attention_mask"])
        dynamic, fixed = net.start_state(memory, 4, 3), net.start_state(memory, 4, 3)
        for t in range(3):
            inputs = batch["decoder_input_ids"][:, t]
            ours, cost = net.step(dynamic, inputs, None, 3, module.exit_head())
            hashed, _ = net.step(fixed, inputs, torch.ones_like(inputs), 3)
            assert torch.allclose(ours, hashed, atol=1e-5) and cost.active == [3, 0, 0] and cost.heads == 3
    for layer in range(3):
        assert torch.allclose(dynamic.keys[layer], fixed.keys[layer], atol=1e-6)
        assert torch.allclose(dynamic.values[layer], fixed.values[layer], atol=1e-6)


def test_joint_loss_weights_deeper_layers_more(small_backbone):
    module = confidence(small_backbone)  # eval mode: no dropout
    sources, targets = random_pairs(4, torch.Generator().manual_seed(3))
    batch = pad_pairs([{"input_ids": s, "decoder_input_ids": t, "labels": t[1:] + [102], "index": i}
                       for i, (s, t) in enumerate(zip(sources, targets))], 0)
    with torch.no_grad():
        losses = module.layer_losses(batch)
        last = module.token_loss(module(batch), batch["labels"])  # the model's own teacher-forced loss
    assert len(losses) == 3
    assert float(module.joint_loss(losses)) == pytest.approx(float((losses[0] + 2 * losses[1] + 3 * losses[2]) / 6))
    assert float(losses[2]) == pytest.approx(float(last), rel=1e-5)
    assert (batch["labels"] == IGNORE_INDEX).any()  # padding was there to ignore


def test_confidence_threshold_is_chosen_on_validation_only(small_backbone):
    module = confidence(small_backbone, threshold_grid=[0.0, 0.5, 1.0], refine_steps=4)
    data = ValidationOnly(*random_pairs(12, torch.Generator().manual_seed(4)))
    fastest = module.val_point(data.eval_batches("val"), data.references("val"), 0.0)["flops_speedup"]
    slowest = module.val_point(data.eval_batches("val"), data.references("val"), 1.0)["flops_speedup"]
    target = (fastest + slowest) / 2
    module.target_speedup = target
    assert module.prepare(data, None)["val_speedup_bound"] > target
    chosen = module.calibrate(data, target)
    assert data.read == {"val"}
    curve = chosen["val_curve"]
    assert len(curve) > 3  # the grid, then bisections around the target
    point, reached = choose_operating_point(curve, target)
    assert reached and chosen["reached_target"] and chosen["value"] == point["value"] == module.threshold
    assert target <= chosen["val_flops_speedup"] == point["flops_speedup"]
    again = module.val_point(data.eval_batches("val"), data.references("val"), module.threshold)
    assert again["flops_speedup"] == pytest.approx(chosen["val_flops_speedup"])  # generation at the chosen threshold


def test_confidence_refuses_a_target_no_threshold_reaches_before_training(small_backbone):
    module = confidence(small_backbone, target_speedup=10.0)
    with pytest.raises(ConfigError, match="unreachable for generation with confidence exits") as error:
        module.prepare(ValidationOnly(*random_pairs(6, torch.Generator().manual_seed(5))), None)
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------- static truncation


def k_layer_copy(backbone, k: int):
    """A fresh BERT2BERT built with k encoder and k decoder layers, holding the first k layers' weights."""
    small = tiny_backbone(num_hidden_layers=k)
    result = small.model.load_state_dict(backbone.model.state_dict(), strict=False)
    assert not result.missing_keys and all(".2." in key for key in result.unexpected_keys)
    return EncoderDecoderModel(encoder=small.model["encoder"], decoder=small.model["decoder"]).eval()


def test_static_decoder_cache_is_exact_against_a_model_built_with_k_layers(backbone):
    module = Seq2SeqStatic(SPEC, backbone, OPTIM, GENERATION, layers=2).eval()
    reference = k_layer_copy(backbone, 2)
    batch = text_batch(backbone, REAL_TEXT[:4], TARGETS[:4])
    net, (encoder_depth, decoder_depth) = module.net, module.depths
    ids, real = batch["decoder_input_ids"], batch["decoder_attention_mask"].bool()
    with torch.no_grad():
        memory = net.cross_memory(net.encode(batch["input_ids"], batch["attention_mask"], None, encoder_depth),
                                  batch["attention_mask"], decoder_depth)
        state = net.start_state(memory, ids.shape[1], decoder_depth)
        assert len(state.keys) == len(memory.keys) == 2
        for t in range(ids.shape[1]):  # incremental decoding with the cache vs the k-layer model on the whole prefix
            step, _ = net.step(state, ids[:, t], None, decoder_depth)
            prefix = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               decoder_input_ids=ids[:, : t + 1]).logits[:, -1]
            assert torch.allclose(step[real[:, t]], prefix[real[:, t]], atol=1e-5)
        teacher = module(batch)  # training runs the same truncated model
        assert torch.allclose(teacher[real], reference(**batch).logits[real], atol=1e-5)
        generated = module.generate(batch)
        inputs = torch.full((4, 1), backbone.start_id)
        for _ in range(GENERATION["max_new_tokens"]):  # greedy with the k-layer model, no cache
            logits = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               decoder_input_ids=inputs).logits[:, -1]
            inputs = torch.cat([inputs, logits.argmax(-1, keepdim=True)], dim=1)
    for row, tokens in enumerate(generated.tokens):
        expected = inputs[row, 1:].tolist()
        assert tokens == (expected[: expected.index(backbone.eos_id)] if backbone.eos_id in expected else expected)
    assert generated.exit_layers[-1] == generated.generated_tokens and len(generated.exit_layers) == 2


def test_static_generation_flops_match_the_counter(backbone):
    module = Seq2SeqStatic(SPEC, backbone, OPTIM, GENERATION, layers=1).eval()
    batch = text_batch(backbone, REAL_TEXT[2:3], TARGETS[2:3])
    out, counted = generate_counting_flops(module, batch)
    assert counted == pytest.approx(out.flops, rel=1e-9) and out.flops < out.flops_full


def test_static_picks_k_on_validation_pairs_with_the_generation_cost(backbone):
    """k is the largest depth whose whole-model speed-up on the validation pairs reaches the target; that speed-up
    is what generating those very targets (forced greedy decoding) costs, LM head and cross-attention memory in."""
    sources = [ids[:60] for ids in backbone.tokenizer([" ".join(REAL_TEXT * 3)] * 3)["input_ids"]]
    targets = [[101, 2023, 2003], [101, 2307], [101, 2023, 2003, 1037, 3231]]
    speedups = Seq2SeqStatic(SPEC, backbone, OPTIM, GENERATION, target_speedup=1.0).prepare(
        ValidationOnly(sources, targets), None)["val_speedups"]
    assert speedups[1] > speedups[2] > speedups[3] == pytest.approx(1.0)
    source_ids, source_mask = pad_sequences(sources)
    batch = {"input_ids": source_ids, "attention_mask": source_mask}
    module = Seq2SeqStatic(SPEC, backbone, OPTIM, GENERATION).eval()
    for k, expected in speedups.items():  # the estimate is the generation's own FLOPs ratio
        with torch.no_grad():
            out = generate(module.net, module.cost, batch, None, None, (k, k), 8, forced=[t[1:] for t in targets])
        assert out.flops_full / out.flops == pytest.approx(expected, rel=1e-9)
    target = (speedups[1] + speedups[2]) / 2
    data = ValidationOnly(sources, targets)
    module = Seq2SeqStatic(SPEC, backbone, OPTIM, GENERATION, target_speedup=target)
    prepared = module.prepare(data, None)
    assert data.read == {"val"} and module.layers == prepared["layers"] == 1 and module.depths == (1, 1)
    module = Seq2SeqStatic(SPEC, backbone, OPTIM, GENERATION, target_speedup=speedups[2])
    assert module.prepare(ValidationOnly(sources, targets), None)["layers"] == 2
    with pytest.raises(ConfigError, match="unreachable for generation with static truncation") as error:
        Seq2SeqStatic(SPEC, backbone, OPTIM, GENERATION, target_speedup=speedups[1] + 0.01).prepare(data, None)
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------- registry and runs


def test_contracts_name_the_task_kinds():
    assert contract_of("confidence").task_kinds == ("generation",)
    assert "generation" in contract_of("static").task_kinds


def test_confidence_refuses_classification_tasks_with_one_line(run_tiny):
    with pytest.raises(ConfigError, match="^method confidence does not run classification tasks") as error:
        run_tiny("method=confidence", name="confidence_cls")
    assert "\n" not in str(error.value)


def test_generation_runs_end_to_end_with_static_and_confidence(run_tiny, tmp_path):
    static = run_tiny(*GEN_RUN, "method=static", "target_speedup=1.1", name="static")
    assert json.loads((tmp_path / "static" / "results.json").read_text())["status"] == "complete"
    assert static["method_info"]["prepare"]["layers"] < 4 and static["method_contract"]["name"] == "static"
    assert static["cost"]["flops_speedup"] > 1.05
    confident = run_tiny(*GEN_RUN, "method=confidence", "target_speedup=1.005", "method.refine_steps=1", name="conf")
    saved = json.loads((tmp_path / "conf" / "results.json").read_text())
    assert saved["status"] == "complete" and saved["method_contract"]["name"] == "confidence"
    chosen = saved["method_info"]["operating_point"]
    assert chosen["knob"] == "confidence_threshold" and len(chosen["val_curve"]) >= 9
    for run in (static, confident):
        cost = run["cost"]
        assert cost["timing_reference"] == "same_steps" and cost["generated_tokens_full"] == cost["generated_tokens"]
        assert cost["time_s"] > 0 and cost["time_full_s"] > 0 and 0 < cost["measured_speedup"] < float("inf")
        assert sum(cost["decoder_exit_layers"]) == cost["generated_tokens"]
    with pytest.raises(ConfigError, match="unreachable for generation with confidence exits"):
        run_tiny(*GEN_RUN, "method=confidence", "target_speedup=2", name="far")
