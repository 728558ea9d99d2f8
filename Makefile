# anomaly-vit: every target sets up .venv on first use (pinned torch/torchvision pair).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install train demo-data test test-fast lint format bench tensorboard clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,sweep]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with dev tools

train: $(STAMP) ## train the default recipe on the built-in demo data (ARGS="key=value ...")
	$(PY) -m anomaly_vit.train $(ARGS)

demo-data: $(STAMP) ## generate the demo data set into data/demo
	$(PY) -m anomaly_vit.data.demo --out data/demo

test: $(STAMP) ## run the whole test suite (fast and slow tests)
	$(PY) -m pytest -q

test-fast: $(STAMP) ## run the tests not marked slow
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff lint and format check
	$(PY) -m ruff check anomaly_vit tests
	$(PY) -m ruff format --check anomaly_vit tests

format: $(STAMP) ## ruff fix and format
	$(PY) -m ruff check --fix anomaly_vit tests
	$(PY) -m ruff format anomaly_vit tests

tensorboard: $(STAMP) ## serve TensorBoard on outputs/
	$(VENV)/bin/tensorboard --logdir outputs

clean: ## remove generated runs and data (keeps .venv)
	rm -rf outputs/runs outputs/multiruns data
