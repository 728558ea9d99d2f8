# anomaly-vit: every target sets up .venv on first use (pinned torch/torchvision pair).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=
RUN ?=
MULTIRUN ?=
LINT_PATHS := anomaly_vit tests scripts notebooks

.DEFAULT_GOAL := help
.PHONY: help install browser train demo-data test test-fast lint format bench bench-quick tensorboard explore strip-notebook clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,sweep,deploy,export,ui]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with dev tools

browser: ## chromium + chromedriver for the page's browser test (apt-get as root, when missing)
	scripts/ensure_browser.sh

train: $(STAMP) ## train the default recipe on the built-in demo data (ARGS="key=value ...")
	$(PY) -m anomaly_vit.train $(ARGS)

demo-data: $(STAMP) ## generate the demo data set into data/demo
	$(PY) -m anomaly_vit.data.demo --out data/demo

test: $(STAMP) browser ## run the whole test suite (fast and slow tests)
	$(PY) -m pytest -q

test-fast: $(STAMP) ## run the tests not marked slow
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff lint and format check (code, tests, scripts, notebook); notebook has no outputs
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)
	$(PY) scripts/strip_notebook.py --check

format: $(STAMP) ## ruff fix and format
	$(PY) -m ruff check --fix $(LINT_PATHS)
	$(PY) -m ruff format $(LINT_PATHS)

bench: $(STAMP) ## benchmarks of the default recipe: throughput vs a plain loop, data/rollout shares, FLOP/s, convergence vs the seed recipe, memory (long; ARGS="key=value ...", see conf/bench.yaml)
	$(PY) -m anomaly_vit.bench $(ARGS)

bench-quick: $(STAMP) ## the same benchmarks in under 3 minutes (small data, few epochs, no convergence)
	$(PY) -m anomaly_vit.bench bench=quick $(ARGS)

tensorboard: $(STAMP) ## serve TensorBoard on outputs/
	$(VENV)/bin/tensorboard --logdir outputs

explore: $(STAMP) ## run the notebook on RUN=<run dir> [MULTIRUN=<dir>] (default: newest run) into outputs/explore_runs.ipynb
	mkdir -p outputs
	cp notebooks/explore_runs.ipynb outputs/explore_runs.ipynb
	AVIT_RUN_DIR="$(RUN)" AVIT_MULTIRUN_DIR="$(MULTIRUN)" $(VENV)/bin/jupyter execute --inplace outputs/explore_runs.ipynb
	@echo "open outputs/explore_runs.ipynb (VS Code, JupyterLab) to see the run"

strip-notebook: $(STAMP) ## remove outputs from notebooks/*.ipynb (before committing)
	$(PY) scripts/strip_notebook.py

clean: ## remove generated runs and data (keeps .venv)
	rm -rf outputs/runs outputs/multiruns data
