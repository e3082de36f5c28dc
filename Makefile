PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: test demo bench gpu-check lint clean

$(BIN)/activate: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/activate

test: $(BIN)/activate
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest benchmarks --benchmark-disable -q

demo: $(BIN)/activate
	$(BIN)/tinygrad-like train cnn --plot runs/cnn_curves.png

$(VENV)/bench-extra: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $@

# Every suite with all frameworks in one process, then the framework comparisons once per
# framework in its own process, then all of them with 1 thread; benchmarks/RESULTS.md reports
# each ratio in the three kinds of run (benchmarks/run_bench.py). Then the scaling curves,
# benchmarks/plots/*.png (benchmarks/scaling.py). About 9 and 3 minutes on a 2-core
# machine. JAX comes with the bench extra; where it does not install, its cases are skipped.
bench: $(VENV)/bench-extra
	$(BIN)/python benchmarks/run_bench.py
	$(BIN)/python benchmarks/scaling.py

# On a machine with an NVIDIA GPU: installs what is missing, runs the cuda-marked tests and
# the GPU benchmarks, writes benchmarks/gpu-report.md and .json (benchmarks/gpu_check.py).
# Uses the project's virtual environment when there is one, else $(PYTHON).
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) benchmarks/gpu_check.py

lint: $(BIN)/activate
	$(BIN)/python -m ruff check tinygrad_like tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
