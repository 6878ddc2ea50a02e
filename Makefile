# Two commands set everything up on a fresh machine with Python 3.11: `make dev` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install dev test bench lint format lock clean-data

# Every package from the lock file (requirements/dev.txt: runtime + embedded + dev), each checked against
# its hashes; then the project itself, editable, with nothing more.
$(STAMP): pyproject.toml requirements/dev.txt package.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	# Browser-side test tools (axe-core); the accessibility test is skipped where npm is missing.
	if command -v npm >/dev/null; then npm ci --no-audit --no-fund --silent; fi
	touch $(STAMP)

# The compiled translations follow their sources.
TRANSLATIONS := $(patsubst %.po,%.mo,$(wildcard eci_platform/locale/*/LC_MESSAGES/django.po))
$(TRANSLATIONS): $(STAMP) $(wildcard eci_platform/locale/*/LC_MESSAGES/django.po)
	$(BIN)/python -m eci_platform.translations

install: $(STAMP) $(TRANSLATIONS)

# The dev runner starts the embedded PostgreSQL/Redis where DATABASE_URL/REDIS_URL are unset and writes
# their addresses to .env, so that manage.py in a second terminal reaches the same services.
dev: install
	DEBUG=1 $(BIN)/python manage.py dev

test: install
	DEBUG=$${DEBUG:-1} $(BIN)/python -m pytest

bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || echo "wrk is missing: the HTTP signing benchmark will be skipped"
	DEBUG=$${DEBUG:-1} $(BIN)/python -m pytest bench -m bench -p no:randomly -p no:logging -s -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# The import contracts of pyproject.toml: imports run one way (regulation, workers < tenants < collection < exports).
	$(BIN)/lint-imports --no-cache
	# mypy's Django plugin loads the settings, which need both addresses: these are never connected to.
	DEBUG=$${DEBUG:-1} DATABASE_URL=$${DATABASE_URL:-postgres://mypy@127.0.0.1:1/none} \
		REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:1/0} $(BIN)/mypy .

# Resolve the lock files (requirements/) again from pyproject.toml after a dependency changed there: pins
# that still fit are kept (UPGRADE=1: the newest releases allowed). tests/architecture/test_lock_files.py
# fails until it is run.
lock: $(STAMP)
	$(BIN)/python deploy/lock.py $(if $(UPGRADE),--upgrade)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean-data:
	rm -rf .data
