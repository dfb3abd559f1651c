"""How a run is wired: callbacks and logger from their config groups, the run's identity, the task kind's
pipeline, and a trained-model key that changes with any source file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar, TQDMProgressBar

from conftest import compose_config
from hashee.core.errors import ConfigError
from hashee.experiments.classification import run_classification
from hashee.experiments.dispatch import experiment_for
from hashee.experiments.generation import run_generation
from hashee.experiments.training import make_callbacks
from hashee.runs import identity
from hashee.methods.registry import contract_of
from hashee.runs.identity import code_files, code_fingerprint, method_label, requested_target, run_tags
from hashee.runs.logger import make_logger


class RecordingLogger:
    """A stand-in for the logger group's ``_target_``: keeps what it was built with."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.experiment = None


def test_callbacks_come_from_the_callbacks_group(tmp_path):
    checkpoint, bar = make_callbacks(compose_config([]), tmp_path, "main")
    assert isinstance(checkpoint, ModelCheckpoint) and isinstance(bar, RichProgressBar)
    assert Path(checkpoint.dirpath) == (tmp_path / "checkpoints").resolve() and checkpoint.filename == "best-main"
    assert (checkpoint.monitor, checkpoint.mode, checkpoint.save_top_k, checkpoint.save_weights_only) == (
        "val/primary", "max", 1, True)
    assert [type(c) for c in make_callbacks(compose_config(["progress_bar=false"]), tmp_path, "x")] == [ModelCheckpoint]
    tqdm = make_callbacks(compose_config(["callbacks=tqdm", "callbacks.model_checkpoint.filename=kept"]), tmp_path, "x")
    assert isinstance(tqdm[1], TQDMProgressBar) and tqdm[0].filename == "kept"


def test_logger_comes_from_the_logger_group(tmp_path):
    cfg = compose_config(["method=hashee", "hash=mi", "target_speedup=2", "logger.tags=[mine]",
                          f"logger._target_={__name__}.RecordingLogger"])
    logger = make_logger(cfg, tmp_path, {"seed": 0})
    assert isinstance(logger, RecordingLogger)
    kwargs = logger.kwargs
    assert kwargs["tags"] == ["task:rotten_tomatoes", "backbone:minilm", "method:hashee", "seed:0", "hash:mi", "speedup:2",
                              "mine"]
    assert kwargs["offline"] is True and kwargs["save_dir"] == str(tmp_path) and kwargs["config"] == {"seed": 0}
    assert kwargs["project"] == "hashee-bench" and kwargs["name"] == "rotten_tomatoes-hashee-s0"
    assert kwargs["job_type"] == "hashee" and "mode" not in kwargs
    assert make_logger(compose_config(["logger=none"]), tmp_path, {}) is None
    assert make_logger(compose_config(["logger.mode=disabled"]), tmp_path, {}) is None


def test_run_names_and_targets():
    """Labels, targets and tags come from the method's contract; the target is ``target_speedup`` alone."""
    hashee, pabee, full = contract_of("hashee"), contract_of("pabee"), contract_of("full")
    config = {"hash": {"name": "cluster"}, "hashee": {"depth": 4, "pooling": None}, "target_speedup": 2}
    assert method_label(hashee, config) == "hashee[cluster; depth=4]" and requested_target(hashee, config) == 2.0
    assert method_label(hashee, {**config, "target_speedup": None}) == "hashee[cluster; depth=4; paper]"
    assert method_label(pabee, {"target_speedup": 2}) == "pabee" and requested_target(pabee, {"target_speedup": 2}) == 2.0
    assert requested_target(full, {"target_speedup": 2}) is None
    assert run_tags(compose_config(["method=pabee", "target_speedup=1.5"]), pabee) == [
        "task:rotten_tomatoes", "backbone:minilm", "method:pabee", "seed:0", "speedup:1.5"]
    assert run_tags(compose_config(["method=full", "target_speedup=1.5"]), full) == [
        "task:rotten_tomatoes", "backbone:minilm", "method:full", "seed:0"]


def test_the_task_kind_picks_the_pipeline():
    assert experiment_for(compose_config([])).run is run_classification
    assert experiment_for(compose_config(["task=stsb"])).run is run_classification
    assert experiment_for(compose_config(["task=bbc_headlines"])).run is run_generation
    with pytest.raises(ConfigError, match="unknown experiment.name 'nope'"):
        experiment_for(compose_config(["experiment.name=nope"]))


def test_code_fingerprint_reads_every_source_file_of_both_packages():
    names = {name for name, _ in code_files()}
    assert {"hashee/core/encoder.py", "hashee/experiments/difficulty/model.py", "baselines/pabee.py"} <= names
    root = Path(__file__).resolve().parents[1]
    assert names == {p.relative_to(root).as_posix() for package in ("hashee", "baselines")
                     for p in (root / package).rglob("*.py")}


def test_code_fingerprint_changes_with_a_file_of_a_subpackage(tmp_path, monkeypatch):
    nested = tmp_path / "fakepkg" / "sub" / "deep"
    nested.mkdir(parents=True)
    for folder in (tmp_path / "fakepkg", tmp_path / "fakepkg" / "sub", nested):
        (folder / "__init__.py").write_text("")
    module = nested / "mod.py"
    module.write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(identity, "CODE_PACKAGES", ("fakepkg",))
    sys.modules.pop("fakepkg", None)
    before = code_fingerprint()
    module.write_text("x = 2\n")
    edited = code_fingerprint()
    (nested / "new.py").write_text("")
    assert len({before, edited, code_fingerprint()}) == 3
