# Two commands for a newcomer: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp
DEMO   := .demo
PYTEST_ARGS ?=

.PHONY: demo test install bench clean-demo lint

$(STAMP): pyproject.toml setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Strongroom needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# A synthetic demo practice in .demo/ (SQLite, all PHI encrypted), its daemon, the console.
demo: $(STAMP)
	@BIN=$(BIN) DEMO=$(DEMO) scripts/demo.sh

# The whole suite: SQLite always, PostgreSQL too when a server answers.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/encrypted_insert.py
	$(BIN)/python bench/control_latency.py

clean-demo:
	rm -rf $(DEMO)
