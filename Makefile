# losslab — the two quick-start commands are `make study` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.14.1 torchvision==0.29.1
STUDY ?= quick
STUDY_OUT ?= studies/$(STUDY)
STUDY_WORKERS ?= 2

.PHONY: help venv study test lint format catalogue bench clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test,ray]'
	touch $(STAMP)

venv: $(STAMP)  ## make .venv and install losslab with its test extras

study: $(STAMP)  ## the main job: run the built-in study and write its report
	$(BIN)/losslab study run $(STUDY) --out $(STUDY_OUT) --workers $(STUDY_WORKERS)
	$(BIN)/losslab study report $(STUDY_OUT)

test: $(STAMP)  ## ruff check + format check, then the whole test suite (slow tests included)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/pytest -n 2 -q

lint: $(STAMP)  ## ruff check + format check
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)  ## apply ruff format
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

catalogue: $(STAMP)  ## after adding or changing a loss or a model preset: rewrite src/losslab/catalogue.json and docs/losses.md
	$(BIN)/python -m losslab.catalogue --write
	$(BIN)/losslab losses doc --out docs/losses.md

bench: $(STAMP)  ## run every benchmark
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:  ## remove caches (keeps .venv)
	rm -rf .pytest_cache .ruff_cache .hypothesis build
