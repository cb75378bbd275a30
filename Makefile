PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

$(BIN)/snakemake:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c .ci/constraints.txt -e '.[test]'

install: $(BIN)/snakemake

run: install
	. $(BIN)/activate && snakemake --cores all results/table.md

test: install
	. $(BIN)/activate && ruff check . && pytest -q tests

.PHONY: install run test
