# Two commands for a newcomer: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp
DEMO   := .demo
PYTEST_ARGS ?=
# Three workers on two cores: a good part of the suite waits on daemons and subprocesses,
# so a third worker fills idle core time (12.5 min with two workers here). Work is stolen
# test by test, so a slow file at the end does not leave a core idle.
PYTEST := $(BIN)/python -m pytest -n 3 --dist worksteal -q
REPEAT ?= 5

.PHONY: demo test test-repeat soak install bench clean-demo lint bytecode

$(STAMP): pyproject.toml setup.py core/crypto/_gcm.c core/repository/_text.c core/repository/_canon.c core/repository/_buffer.h core/repository/_iso.h core/db/_rows.c
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Strongroom needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Our modules compiled once, before the suite or the demo starts processes. Where the
# environment sets PYTHONDONTWRITEBYTECODE (these machines do, CI included), Python
# reads compiled modules but never writes them, so every daemon and CLI process a test
# started compiled some 250 modules from source again (importing the daemon: 1.09 s
# without them, 0.91 s with). The compiled files sit in __pycache__/ (ignored by git)
# and are redone when a source changes.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 core daemon console tests bench > /dev/null

# A synthetic demo practice in .demo/ (SQLite, all PHI encrypted), its daemon, the console.
demo: $(STAMP) bytecode
	@BIN=$(BIN) DEMO=$(DEMO) scripts/demo.sh

# The whole suite: SQLite always, PostgreSQL too when a server answers. Soak tests (long
# or large) are left to `make soak`; the ten slowest tests are printed at the end.
test: $(STAMP) bytecode
	$(PYTEST) -m 'not soak' --durations=10 $(PYTEST_ARGS)

# Flakes are found here before CI finds them: the suite $(REPEAT) times, each in a new
# random order (its seed printed at the top, to replay with -p random_order --random-order-seed=N).
test-repeat: $(STAMP) bytecode
	@for run in $$(seq 1 $(REPEAT)); do \
	  echo "== run $$run of $(REPEAT)"; \
	  $(PYTEST) -m 'not soak' -p random_order --random-order-bucket=module $(PYTEST_ARGS) || exit 1; \
	done

# Long and large: kill -9 mid-backup over 48k rows, 100k-key rotation, 50 console stress rounds.
soak: $(STAMP) bytecode
	$(PYTEST) -m soak --durations=10 $(PYTEST_ARGS)
	STRONGROOM_STRESS_ROUNDS=50 $(PYTEST) tests/console/tui/test_console_stress.py $(PYTEST_ARGS)

# Benchmarks against the tools users would otherwise pick. `make bench SCALE=3` for a
# larger dataset (built once per scale, then reused); results in bench/results/latest.md.
SCALE ?= 1
bench: $(STAMP) bytecode
	$(BIN)/python bench/all.py --scale $(SCALE)

clean-demo:
	rm -rf $(DEMO)
