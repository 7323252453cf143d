# Two commands do all the set-up on a fresh machine (Python >= 3.11 and make):
#   make demo   install, migrate a SQLite database, load demo data, serve on http://127.0.0.1:8000
#   make test   install and run the test suite (SQLite; set HOMEWARD_TEST_DATABASE_URL for PostgreSQL)
#               in TEST_WORKERS processes (pytest-xdist), each on a database of its own
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
TEST_WORKERS ?= 2

.PHONY: install demo serve test lint check

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/homeward db upgrade
	$(BIN)/homeward demo
	$(BIN)/homeward serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Models and migrations agree (alembic check) on a scratch database at head.
check: install
	rm -f .alembic-check.db*
	HOMEWARD_DATABASE_URL=sqlite:///.alembic-check.db $(BIN)/homeward db upgrade
	HOMEWARD_DATABASE_URL=sqlite:///.alembic-check.db $(BIN)/alembic check
	rm -f .alembic-check.db*
