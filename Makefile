PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000

CATALOGS := portal/translations
# Each language's compiled catalog, rebuilt when its .po changes.
MOS := $(patsubst %.po,%.mo,$(wildcard $(CATALOGS)/*/LC_MESSAGES/messages.po))

.PHONY: run test lint format clean messages

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

%.mo: %.po $(STAMP)
	$(BIN)/pybabel --quiet compile -i $< -o $@

## messages: extract the English strings and merge them into every language's catalog
messages: $(STAMP)
	$(BIN)/pybabel --quiet extract -F babel.cfg -k lazy_gettext -k _l -k N_ --no-location \
		--sort-output -o $(CATALOGS)/messages.pot .
	$(BIN)/pybabel --quiet update --no-fuzzy-matching --ignore-obsolete -i $(CATALOGS)/messages.pot -d $(CATALOGS)

## run: install, migrate the embedded SQLite database, seed the demo and serve on :$(PORT)
run: export LOG_FORMAT ?= text
run: $(STAMP) $(MOS)
	$(BIN)/portal db upgrade
	$(BIN)/portal demo
	PATH="$(CURDIR)/$(BIN):$$PATH" PORT=$(PORT) $(BIN)/honcho start

## test: install and run the whole suite (SQLite; PostgreSQL with TEST_DATABASE_URL)
test: $(STAMP) $(MOS)
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
