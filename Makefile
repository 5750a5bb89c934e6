# Chargeline: every command creates or refreshes the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint openapi bench lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## run: start Chargeline (embedded PostgreSQL unless CHARGELINE_DATABASE_URL is set)
run: $(STAMP)
	$(BIN)/chargeline serve

## test: lint, type-check and run the whole suite (throwaway embedded PostgreSQL unless TEST_DATABASE_URL is set)
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff and mypy --strict
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## openapi: regenerate the committed OpenAPI document from the app
openapi: $(STAMP)
	$(BIN)/chargeline openapi --output openapi/openapi.json

## bench: run the benchmark suite (needs wrk: apt-get install wrk)
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## lock: re-resolve requirements.lock from pyproject.toml (needs network)
lock:
	$(PYTHON) -m pip install --quiet uv && $(PYTHON) -m uv pip compile pyproject.toml --extra dev \
		--universal --python-version 3.11 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
