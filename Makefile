PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

$(BIN)/snakemake:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c .ci/constraints.txt -e '.[test]'

install: $(BIN)/snakemake

run: install
	. $(BIN)/activate && snakemake --cores all results/table.md

# lint (ruff, snakefmt, snakemake --lint), then every test, the whole default DAG included
test: install
	. $(BIN)/activate && ruff check . && ruff format --check . && snakefmt --check Snakefile rules \
	  && snakemake --lint && pytest -q tests

# everything a run made: data, training runs, results, logs, benchmarks, Snakemake's state
clean:
	rm -rf data runs results logs benchmarks .snakemake

.PHONY: install run test clean
