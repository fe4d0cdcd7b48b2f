# The two commands of the README:
#   make demo   set up a virtualenv and run the controller's local profile on a seeded inbox
#   make test   set up everything the tests need (pip, and Debian tools when root) and run them
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCAL_DIR ?= ./alignbatch-local

.PHONY: demo test lint lock setup setup-test tools clean

# setuptools: numba.pycc builds its extension with it (aot_build); a Python 3.12+ venv has none.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools

# The report extra (jinja2, matplotlib, pyarrow) writes the QC history and batch report the demo ends with.
# aot_build compiles the engine's kernels ahead of time (worker/engine/aot.py); without a C compiler it
# says so in one line and the engine keeps numba's JIT kernels (same reports, ~0.3 s more per run).
AOT_BUILD = $(BIN)/python -m worker.engine.aot_build || echo "make: continuing with the JIT kernels"

setup: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[report]'
	$(AOT_BUILD)

setup-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(AOT_BUILD)

tools:
	bash scripts/install-tools.sh

demo: setup
	$(BIN)/alignbatch-controller run --local $(LOCAL_DIR) --demo --once

test: setup-test tools
	@# again, now that tools may have installed the compiler (instant when setup-test managed it)
	$(AOT_BUILD)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/security-checks.sh
	PATH="$(CURDIR)/$(BIN):$(CURDIR)/.tools/bin:$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

lock: setup
	bash scripts/lock-deps.sh

lint: setup-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .tools $(LOCAL_DIR) build *.egg-info
