# Set-up and the two jobs of the README. Override TORCH_SPEC for another build, e.g.
#   make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install test test-all demo bench results report clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[test,ray,serve]"
	# the browser tests drive Debian's Chromium (Playwright downloads nothing): installed here when missing
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && export DEBIAN_FRONTEND=noninteractive && \
	  { apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }; } || \
	  echo "note: no chromium (Debian package chromium): the browser tests of dt serve need it"
	touch $@

install: $(VENV)/.installed

demo: install
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(BIN)/dt demo --output reports/demo

# one pytest worker per usable CPU, each test file on one worker (its module fixtures are built once)
test: install
	$(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

test-all: install
	$(BIN)/python -m pytest -m ""

# Every training, evaluation and sweep behind docs/results.md (suite v1) and models/: days of CPU
# time, resumable (rerun to continue), WORKERS one-thread workers sharing the task list; then the report.
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
results: install
	pids=; for i in $$(seq $(WORKERS)); do \
	  OMP_NUM_THREADS=1 MUJOCO_GL=$${MUJOCO_GL:-egl} $(BIN)/dt results run & pids="$$pids $$!"; sleep 5; \
	done; for p in $$pids; do wait $$p || exit 1; done
	$(BIN)/dt results report

report: install
	$(BIN)/dt results report

bench: install
	$(BIN)/pip install -q -e ".[test,behaviour,bench]"   # sbx + SB3 (behaviour_libs), threadpoolctl (gemm_floor)
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/rollout.py
	$(BIN)/python bench/gemm_floor.py
	$(BIN)/python bench/sampler.py
	$(BIN)/python bench/behaviour_libs.py
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(BIN)/python bench/serve_episode.py
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(BIN)/python bench/peers.py        # makes .venv-peers (d3rlpy) on first use
	$(BIN)/python bench/odt_budget.py                  # needs dt/hopper/medium-v1 (dt suite build --version v1)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
