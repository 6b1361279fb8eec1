# `make demo` runs the pipeline end to end on the test world; `make test` runs `make lint` (ruff), then the test suite.
# Each creates .venv when missing and reinstalls the package only when pyproject.toml changed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test test-all lint bench system-deps clean help

help:
	@echo "make demo   # run the whole pipeline on the built-in test world (CPU, a few minutes)"
	@echo "make test   # lint, then run the test suite (installs what it needs)"
	@echo "make lint   # ruff check (configuration in pyproject.toml)"
	@echo "make bench  # run the benchmarks under benchmarks/"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev]'
	touch $(VENV)/.installed $@

# Browser tests need Debian's chromium + chromedriver, METEOR needs WordNet. Best effort: tests skip without them.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 || [ ! -d /usr/share/wordnet ]; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver wordnet-base wordnet-sense-index >/dev/null) \
			|| echo "warning: could not install chromium/wordnet; browser and METEOR tests will be skipped"; \
		else echo "note: chromium/wordnet missing and apt-get unavailable; those tests will be skipped"; fi; \
	fi

demo: $(VENV)/.installed
	$(VENV)/bin/showcase demo --output runs/demo

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

test: lint $(VENV)/.installed-dev system-deps
	$(PY) -m pytest -q

test-all: $(VENV)/.installed-dev system-deps
	$(PY) -m pytest -q -m ""

bench: $(VENV)/.installed-dev
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf runs lightning_logs
