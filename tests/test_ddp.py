"""trainer=ddp: rank-aware batches, validation gathered from every rank, one results.json from rank 0."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from hashee.cli.sweep import validate_ddp_sweep
from hashee.core.distributed import gather_examples, is_rank_zero, merge_rank_outputs
from hashee.core.errors import ConfigError
from hashee.data.batching import LengthGroupedSampler
from hashee.runs.results import write_results
from hashee.tasks.metrics import compute_metrics
from hashee.tasks.spec import TaskSpec
from tests.conftest import TINY_RUN, compose_config

LENGTHS = [random.Random(7).randint(3, 60) for _ in range(103)]


def _rank_batches(world: int, epoch: int, shuffle: bool, batch_size: int = 8) -> list[list[list[int]]]:
    batches = []
    for rank in range(world):
        sampler = LengthGroupedSampler(LENGTHS, batch_size, seed=3, shuffle=shuffle, rank=rank, world_size=world)
        sampler.set_epoch(epoch)
        batches.append(list(sampler))
        assert len(batches[-1]) == len(sampler)
    return batches


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_share_the_epoch_plan_disjointly_except_the_padding(world, shuffle):
    single = LengthGroupedSampler(LENGTHS, 8, seed=3, shuffle=shuffle)
    single.set_epoch(1)
    plan = list(single)  # 13 batches
    per_rank = _rank_batches(world, epoch=1, shuffle=shuffle)
    assert {len(b) for b in per_rank} == {math.ceil(len(plan) / world)}  # same number of steps on every rank
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert set(seen) == set(range(len(LENGTHS)))  # the union covers every example
    padding = len(per_rank[0]) * world - len(plan)  # the first `padding` batches of the plan are repeated
    repeated = {i for batch in plan[:padding] for i in batch}
    counts = {i: seen.count(i) for i in set(seen)}
    assert {i for i, c in counts.items() if c > 1} == repeated and max(counts.values()) <= 2
    shares = [sorted(b) for batches in per_rank for b in batches]
    assert sorted(shares) == sorted(sorted(b) for b in plan + plan[:padding])  # exactly the plan's batches


def test_every_epoch_has_its_own_plan_and_lightning_sets_the_epoch():
    from lightning_fabric.utilities.data import _set_sampler_epoch

    sampler = LengthGroupedSampler(LENGTHS, 8, seed=3, rank=1, world_size=2)
    loader = DataLoader(list(range(len(LENGTHS))), batch_sampler=sampler)
    _set_sampler_epoch(loader, 4)  # what Lightning calls before each training epoch
    assert sampler.epoch == 4
    assert _rank_batches(2, epoch=0, shuffle=True) != _rank_batches(2, epoch=1, shuffle=True)
    assert _rank_batches(2, epoch=1, shuffle=True) == _rank_batches(2, epoch=1, shuffle=True)


def test_bad_rank_is_refused():
    with pytest.raises(ValueError, match="rank 2 is not in a world of 2"):
        LengthGroupedSampler(LENGTHS, 8, seed=0, rank=2, world_size=2)


def _fake_rank_outputs(world: int, outputs: torch.Tensor, labels: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """What each rank's validation_step collects: its share of the (padded) eval batches."""
    parts = []
    for rank in range(world):
        sampler = LengthGroupedSampler(LENGTHS, 16, seed=0, shuffle=False, rank=rank, world_size=world)
        index = torch.tensor([i for batch in sampler for i in batch])
        parts.append((index, outputs[index], labels[index]))
    return parts


@pytest.mark.parametrize("task", ["rotten_tomatoes", "stsb"])
def test_gathered_validation_metrics_equal_the_single_process_ones(task):
    spec = TaskSpec.from_config(compose_config([f"task={task}"]).task)
    generator = torch.Generator().manual_seed(0)
    count = len(LENGTHS)
    if spec.is_regression:
        outputs, labels = torch.randn(count, 1, generator=generator), torch.rand(count, generator=generator) * 5
    else:
        outputs = torch.randn(count, spec.num_labels, generator=generator)
        labels = torch.randint(0, spec.num_labels, (count,), generator=generator)
    single = compute_metrics(spec, *gather_examples(*_fake_rank_outputs(1, outputs, labels)[0]))
    for world in (2, 3):
        parts = _fake_rank_outputs(world, outputs, labels)
        assert sum(len(p[0]) for p in parts) > count  # the padding repeats examples ...
        merged_outputs, merged_labels = merge_rank_outputs(parts)
        assert torch.equal(merged_labels, labels)  # ... which are kept once, in index order
        assert compute_metrics(spec, merged_outputs, merged_labels) == single  # exactly equal
        # one rank alone sees a different metric: the gather is what makes val/primary global
        assert compute_metrics(spec, parts[0][1], parts[0][2]) != single


def test_only_rank_zero_writes_results(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")  # what Lightning's launcher gives the process of rank 1
    assert not is_rank_zero()
    write_results(tmp_path, {"task": "t"}, status="running")
    assert not (tmp_path / "results.json").exists()
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert is_rank_zero()
    write_results(tmp_path, {"task": "t"}, status="running")
    assert (tmp_path / "results.json").exists()


def test_ddp_multirun_on_a_local_launcher_is_refused():
    with pytest.raises(ConfigError, match="trainer=ddp in a multirun"):
        validate_ddp_sweep({"trainer": ["ddp"], "method": ["full", "hashee"]}, "auto", "")
    with pytest.raises(ConfigError, match="trainer=ddp in a multirun"):
        validate_ddp_sweep({}, "ddp_find_unused_parameters_true", "hydra_plugins.hydra_joblib_launcher.JoblibLauncher")
    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    validate_ddp_sweep({"trainer": ["ddp"]}, "auto", slurm)  # SLURM starts the ranks itself
    validate_ddp_sweep({"trainer": ["cpu"], "method": ["full"]}, "auto", "")


BATCH_LINE = re.compile(r"(train|val) batches of rank (\d)/2, epoch 0 \(plan of (\d+)\): (\[.*\])")


def test_ddp_run_on_two_cpu_processes_writes_one_complete_results(tmp_path):
    command = Path(sys.executable).parent / "hashee-bench"
    if not command.exists():
        pytest.skip("the hashee-bench command is not installed next to this Python")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
    env.pop("LOCAL_RANK", None)
    overrides = [*TINY_RUN, f"data.cache_dir={tmp_path / 'cache'}", "method=full", "trainer=ddp", "trainer.devices=2",
                 "trainer.accelerator=cpu", "hydra.verbose=hashee.data"]
    proc = subprocess.run([str(command), *overrides], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]

    results_files = list((tmp_path / "outputs").rglob("results.json"))
    assert len(results_files) == 1  # rank 1 ran in the same run directory and wrote none of its own
    run_dir = results_files[0].parent
    assert (run_dir / "train_ddp_process_1.log").exists()
    results = json.loads(results_files[0].read_text())
    assert results["status"] == "complete" and results["config"]["trainer"]["strategy"].startswith("ddp")
    assert {"accuracy"} <= set(results["metrics"]) and results["cost"]["time_s"] > 0

    seen: dict[str, dict[int, list[list[int]]]] = {"train": {}, "val": {}}
    plans = {}
    for split, rank, plan, batches in BATCH_LINE.findall(output):
        seen[split][int(rank)] = json.loads(batches)
        plans[split] = int(plan)
    assert set(seen["train"]) == {0, 1} and set(seen["val"]) == {0, 1}
    ranks = [{i for batch in seen["train"][r] for i in batch} for r in (0, 1)]
    assert len(seen["train"][0]) == len(seen["train"][1]) == math.ceil(plans["train"] / 2)
    assert ranks[0] | ranks[1] == set(range(results["train"]["examples"]))  # every training example seen
    if 2 * len(seen["train"][0]) > plans["train"]:  # odd plan: its first batch is repeated, as rank 1's last
        assert seen["train"][1][-1] == seen["train"][0][0]
        assert ranks[0] & ranks[1] == set(seen["train"][0][0])
    else:
        assert not ranks[0] & ranks[1]

    # val/primary (checkpoint selection) was computed on the outputs of both ranks: with one epoch
    # the selected model is the final one, whose metric on the whole validation split rank 0 recomputes
    best = results["train"]["stages"][0]["best_val_primary"]
    assert best == pytest.approx(results["val_metrics"][results["primary_metric"]], abs=1e-6)


def test_ddp_is_refused_for_generation_tasks():
    from hashee.experiments.dispatch import check_ddp_support

    with pytest.raises(ConfigError, match="not supported for generation tasks"):
        check_ddp_support(compose_config(["task=bbc_headlines", "trainer=ddp"]))
    check_ddp_support(compose_config(["trainer=ddp"]))
    check_ddp_support(compose_config(["task=bbc_headlines"]))
