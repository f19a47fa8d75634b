# The two commands of README.md's Quick start: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Exact versions CI and the image install; `make constraints` refreshes it.
CONSTRAINTS := constraints.txt

# The suite runs on the production stack: PostgreSQL and Redis on this machine.
TEST_DATABASE_URL ?= postgres://root@127.0.0.1:5432/flakewatch
TEST_BROKER_URL ?= redis://127.0.0.1:6379/9

.PHONY: run test lint constraints bench

$(BIN)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip -c $(CONSTRAINTS)
	$(BIN)/pip install --quiet -e ".[dev]" -c $(CONSTRAINTS)
	touch $@

# On the embedded default, loaddemo --first-start prints the demo login and, on
# a database without projects, loads the demo in the background (never on
# PostgreSQL: production gets no demo login).
run: $(BIN)/.installed
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py loaddemo --first-start
	$(BIN)/python manage.py runserver --noreload 127.0.0.1:8000

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	DJANGO_SECRET_KEY=test-only-secret $(BIN)/pytest $(PYTEST_ARGS)

# Resolve pyproject.toml's ranges afresh in a scratch venv and pin the result
# (setuptools only builds flakewatch: pyproject.toml bounds it, in isolation).
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/pip install --quiet --upgrade pip
	.venv-constraints/bin/pip install --quiet ".[dev]"
	{ echo "# pip freeze of the dev environment; refresh with: make constraints"; \
	  .venv-constraints/bin/pip freeze --all --exclude flakewatch --exclude setuptools; } > $(CONSTRAINTS)
	rm -rf .venv-constraints

bench: $(BIN)/.installed
	$(BIN)/python -m bench.ingest_speed
	$(BIN)/python -m bench.analytics_speed
	$(BIN)/python -m bench.accuracy
