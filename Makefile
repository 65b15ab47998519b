# Set-up and the two jobs of the README. Override TORCH_SPEC for another build, e.g.
#   make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install test test-all demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(BIN)/dt demo --output reports/demo

test: install
	$(BIN)/python -m pytest

test-all: install
	$(BIN)/python -m pytest -m ""

bench: install
	$(BIN)/pip install -q -e ".[test,behaviour,bench]"   # sbx + SB3 (behaviour_libs), threadpoolctl (gemm_floor)
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/rollout.py
	$(BIN)/python bench/gemm_floor.py
	$(BIN)/python bench/sampler.py
	$(BIN)/python bench/behaviour_libs.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
