# migrator: the two commands a newcomer runs are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: setup lint check test test-clients clients demo bench soak clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check migrator tests benchmarks
	$(BIN)/mypy

# Fast inner loop: lint plus the unit tests (no emulators).
check: lint
	$(BIN)/pytest -q tests/unit

# The whole suite: unit, conformance against every adapter's sandbox endpoint, sandbox fidelity, integration.
# The independent clients' checks are `make test-clients`: they need the clients installed.
test: lint
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) tests --ignore=tests/clients

# rclone, the AWS CLI, gcsfs and the OCI CLI, each pinned in its own venv under
# $${MIGRATOR_CLIENTS_CACHE:-~/.cache/migrator}/, never in .venv (tests/clients/install.py).
clients:
	$(PY) tests/clients/install.py

# The sandbox seen through those clients: round trips, checksums, listings, versions, deletes.
test-clients: setup clients
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) tests/clients

demo: setup
	$(BIN)/migrator demo --dir .demo

# Throughput and memory against rclone and a boto3 baseline on the sandbox (JSON in benchmarks/results/).
bench: setup
	sh benchmarks/install_rclone.sh
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# The long reliability run: random kills, faults, fuzzing (JSON in benchmarks/results/soak.json).
KILLS ?= 200
FUZZ ?= 10000
soak: setup
	$(BIN)/python -m benchmarks.soak --kills $(KILLS) --fuzz $(FUZZ)

clean:
	rm -rf $(VENV) .demo .migrator-sandbox
