# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test test-fast lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# Local development delivers to receivers on this machine (hookhub listen); production does not.
serve: export HOOKHUB_ALLOW_PRIVATE_DESTINATIONS ?= 127.0.0.0/8,::1/128
serve: export HOOKHUB_LOG_FORMAT ?= text
serve: $(VENV)/.installed
	$(BIN)/hookhub serve --database-url sqlite:///./hookhub.db

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check hookhub tests bench
	$(BIN)/mypy

# Everything, both backends (PostgreSQL runs when HOOKHUB_TEST_POSTGRES_URL is set), in parallel.
test: lint
	$(BIN)/pytest -W error -n auto

# The inner loop: unit and SQLite integration tests, without the slow end-to-end ones.
test-fast: lint
	$(BIN)/pytest -W error -n auto -m "not postgres and not slow" tests/unit tests/integration

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
