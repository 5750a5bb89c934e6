# Chargeline: every command creates or refreshes the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint browser openapi wrk bench lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## run: start Chargeline (embedded PostgreSQL unless CHARGELINE_DATABASE_URL is set)
run: $(STAMP)
	$(BIN)/chargeline serve

## demo: the service on its own embedded PostgreSQL, driven by the eDRV simulator; prints the board's URL
demo: $(STAMP)
	$(BIN)/chargeline demo

## test: lint, type-check and run the whole suite (throwaway embedded PostgreSQL unless TEST_DATABASE_URL is set)
test: lint browser wrk
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff and mypy --strict
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## browser: Debian's Chromium and its chromedriver for the live board's browser test (installed as root)
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium and chromium-driver for the browser test"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null \
		|| { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }; \
	else echo "note: no chromium/chromedriver (apt-get install chromium chromium-driver): the board's browser test is skipped"; fi

## openapi: regenerate the committed OpenAPI document from the app
openapi: $(STAMP)
	$(BIN)/chargeline openapi --output openapi/openapi.json

## wrk: Debian's wrk, the benchmarks' HTTP load generator (installed as root)
wrk:
	@if command -v wrk >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's wrk for the benchmarks"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends wrk >/dev/null \
		|| { apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk >/dev/null; }; \
	else echo "note: no wrk (apt-get install wrk): benchmarks that need it stop and say so"; fi

## bench: run a benchmark (BENCH_ARGS=all: the whole suite); installs wrk first when it can
bench: $(STAMP) wrk
	$(BIN)/python -m bench $(BENCH_ARGS)

## lock: re-resolve requirements.lock from pyproject.toml (needs network)
lock:
	$(PYTHON) -m pip install --quiet uv && $(PYTHON) -m uv pip compile pyproject.toml --extra dev \
		--universal --python-version 3.11 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
