# Two entry points: `make demo` (the main job) and `make test` (the whole suite).
# Both create the virtual environment at .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench venv clean

$(BIN)/mmaml: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

venv: $(BIN)/mmaml

demo: $(BIN)/mmaml
	$(BIN)/mmaml demo --out runs/demo

test: $(BIN)/mmaml
	$(BIN)/python -m pytest -q

bench: $(BIN)/mmaml
	$(BIN)/python benchmarks/bench_inner_loop.py

clean:
	rm -rf $(VENV) runs
