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

bench: $(BIN)/activate
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-group-by=group \
		--benchmark-warmup=on --benchmark-warmup-iterations=20 \
		--benchmark-columns=median,iqr,rounds --benchmark-json=benchmarks/results.json
	$(BIN)/python benchmarks/report.py benchmarks/results.json > benchmarks/RESULTS.md

# On a machine with an NVIDIA GPU: installs what is missing, runs the cuda-marked tests and
# the GPU benchmarks, writes benchmarks/gpu-report.md and .json (benchmarks/gpu_check.py).
# Uses the project's virtual environment when there is one, else $(PYTHON).
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) benchmarks/gpu_check.py

lint: $(BIN)/activate
	$(BIN)/python -m ruff check tinygrad_like tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
