# Two entry points: `make book` builds the companion book, `make test` runs the
# test suite. Both create (or reuse) the virtual environment in $(VENV) and
# install fslib with everything it needs into it.

VENV ?= .venv
PYTHON ?= python3
PROFILE ?= quick
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fslib-installed

.PHONY: book test bench clean-book

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[book,dev]'
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/fslib book build --profile $(PROFILE)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/bench_filter.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_search.py

clean-book:
	rm -rf _build
