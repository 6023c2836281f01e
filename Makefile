# The two commands of the README: `make run` and `make test`.  Both create .venv and install.
# the first interpreter that really runs and is 3.10-3.12 (pyenv shims exist for versions that are not active)
PYTHON ?= $(shell for p in python3 python3.12 python3.11 python3.10; do \
	$$p -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' >/dev/null 2>&1 && echo $$p && break; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export OPENBLAS_NUM_THREADS ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: install run test lint bench evaluate clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "need python3.10, 3.11 or 3.12 on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# -qq: errors only (a pip config naming absent find-links folders warns once per package)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[dev,spark,obp]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/recops up

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

evaluate: install
	$(BIN)/recops evaluate --dataset demo
	$(BIN)/recops fetch-movielens --to data/ml-100k
	$(BIN)/recops evaluate --dataset movielens --path data/ml-100k

clean:
	rm -rf $(VENV) data .pytest_cache
