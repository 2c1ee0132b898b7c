# Two entry points, each self-contained: `make demo` and `make test`.
# Both create the virtual environment .venv if it is missing, install torch==2.13.0 if no torch
# is importable there, then install this package with `pip install -e .[all,dev]`.

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hvrnn-installed
TORCH ?= torch==2.13.0
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test install lint

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hvrnn demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
