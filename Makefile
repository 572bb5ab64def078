# Eco-Pulse: the two commands are `make run` and `make test`; the rest are their parts.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV := .dev

.PHONY: run test check lint typecheck contracts pytest fmt bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## run: issue development certificates and start the webhook on the example config (mock grid)
run: $(STAMP)
	$(BIN)/python -m certs issue --service eco-pulse-webhook --namespace eco-pulse \
		--dns localhost --ip 127.0.0.1 --out $(DEV)/tls >/dev/null
	ECOPULSE_TLS_DIR=$(DEV)/tls ECOPULSE_CONFIG=examples/config.yaml \
		ECOPULSE_BIND_ADDRESS=127.0.0.1 ECOPULSE_METRICS_BIND_ADDRESS=127.0.0.1 \
		$(BIN)/python -m webhook

## test: format check, lint, strict types, layering contracts, then the test suite
test: check pytest

check: lint typecheck contracts

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/webhook.py

clean:
	rm -rf $(VENV) $(DEV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
