"""The typed configuration (hashee/runs/schema.py): wrong types, ranges and choices are one line and exit 2, the
speed-up knob has one name, and validating against the schemas leaves every recorded fingerprint as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_RUN, compose_config
from hydra.core.config_store import ConfigStore

from hashee.core.errors import ConfigError
from hashee.runs.identity import config_fingerprint
from hashee.runs.schema import SCHEMAS, check_config, store_schemas

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("override, message", [
    ("data.batch_size=-3", "data.batch_size=-3: must be >= 1"),
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1: must be >= 1"),
    ("optim.lr=0", "optim.lr=0: must be > 0"),
    ("recipe.warmup_ratio=1.5", "recipe.warmup_ratio=1.5: must be <= 1"),
    ("target_speedup=0.5", "target_speedup=0.5: must be >= 1"),
    ("hashee.pooling=avg", "hashee.pooling=avg: choose from cls, mean"),
    ("resume=never", "resume=never: choose from code, config"),
    ("backbone.pooling=max", "backbone.pooling=max: choose from auto, cls, mean"),
    ("data.eval_batch_size=2.5", "data.eval_batch_size=2.5: not a whole number"),
    ("target_speedup=inf", "target_speedup=inf: not a number"),
])
def test_a_bad_value_is_one_line_naming_key_value_and_what_is_allowed(override, message):
    with pytest.raises(ConfigError) as caught:
        check_config(compose_config(TINY_RUN + [override]))
    assert str(caught.value) == message


def test_the_speed_up_knob_has_one_name():
    """hashee.target_speedup and method.target_speedup mirror target_speedup; set apart, they are refused."""
    check_config(compose_config(TINY_RUN + ["method=hashee", "target_speedup=2"]))
    check_config(compose_config(TINY_RUN + ["method=static", "target_speedup=3"]))
    with pytest.raises(ConfigError, match=r"^hashee.target_speedup=3: the speed-up knob is target_speedup"):
        check_config(compose_config(TINY_RUN + ["method=hashee", "target_speedup=2", "hashee.target_speedup=3"]))
    with pytest.raises(ConfigError, match=r"^method.target_speedup=3: the speed-up knob is target_speedup"):
        check_config(compose_config(TINY_RUN + ["method=static", "method.target_speedup=3"]))


@pytest.mark.parametrize("method", ["full", "hashee", "static", "deebert", "pabee", "pcee", "berxit"])
def test_every_shipped_method_and_task_passes(method):
    for task in ("rotten_tomatoes", "sst2", "stsb", "snli", "bbc_headlines"):
        check_config(compose_config([f"method={method}", f"task={task}", "target_speedup=2"]))


def test_the_schemas_are_in_hydras_config_store():
    store_schemas()
    stored = ConfigStore.instance().repo["schema"]
    assert {name.removesuffix(".yaml") for name in stored} == {group or "root" for group in SCHEMAS}


def test_committed_runs_keep_their_fingerprints():
    """The demo's six committed runs: their configuration composed again gives the recorded fingerprint (the schemas
    validate the composed config and never retype it)."""
    runs = sorted((ROOT / "results" / "demo" / "runs").iterdir())
    assert len(runs) == 6
    for run in runs:
        recorded = json.loads((run / "results.json").read_text())["config_fingerprint"]
        assert config_fingerprint(compose_config(run.name.split(","))) == recorded, run.name


@pytest.mark.parametrize("override", ["data.batch_size=-3", "trainer.max_epochs=-1"])
def test_the_two_tracebacks_a_new_user_hit_are_one_line_and_exit_2(tmp_path, override):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "hashee.cli", *TINY_RUN, override, f"data.cache_dir={tmp_path / 'cache'}",
           f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if line.strip()] == [f"error: {override}: must be >= 1"]


def test_the_closed_sets_are_the_ones_the_code_checks():
    """The schema's enums mirror the constants the code refuses other values with (kept apart: those modules import
    torch and transformers). Mutation caught: a value added to one side only."""
    from hashee.core.backbone import POOLINGS as BACKBONE_POOLINGS
    from hashee.methods.hashee import EXITED_TOKEN_MODES, POOLINGS
    from hashee.runs.identity import RESUME_POLICIES
    from hashee.runs.schema import BackbonePooling, ExitedTokens, HeadPooling, Resume

    for enum_type, constant in ((BackbonePooling, BACKBONE_POOLINGS), (ExitedTokens, EXITED_TOKEN_MODES),
                                (HeadPooling, POOLINGS), (Resume, RESUME_POLICIES)):
        assert tuple(member.value for member in enum_type) == tuple(constant), enum_type
