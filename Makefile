PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000

.PHONY: run test lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: install, migrate the embedded SQLite database, seed the demo and serve on :$(PORT)
run: export LOG_FORMAT ?= text
run: $(STAMP)
	$(BIN)/portal db upgrade
	$(BIN)/portal demo
	PATH="$(CURDIR)/$(BIN):$$PATH" PORT=$(PORT) $(BIN)/honcho start

## test: install and run the whole suite (SQLite; PostgreSQL with TEST_DATABASE_URL)
test: $(STAMP)
	$(BIN)/pytest

## lint: ruff (style, banned APIs) and the walls between the parts (import-linter)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) instance tests/screenshots .pytest_cache
