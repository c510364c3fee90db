# One command installs and runs the main job, one runs the tests:
#   make demo    create .venv, install spacy-clinie, run `spacy project run all`
#   make test    create .venv if needed, install, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip check
	touch $@

demo: install
	$(VENV)/bin/spacy project run all

test: install
	$(PY) -m pytest -q
