# The two commands of the README, and the checks CI runs.
#   make demo   set up (first time) and run the main job on the example deployment
#   make test   set up (first time), install Chromium if missing, run the whole test suite
#   make lint   ruff and mypy --strict
# Set-up: a virtual environment in .venv with the pinned versions of constraints.txt; for
# the tests also Chromium from Debian's packages (/usr/bin/chromium, the browser tests
# drive it; scripts/browser.sh installs it when it is missing) and the local services.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint services browser constraints clean

$(STAMP): pyproject.toml constraints.txt examples/plugin-musirawas/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e examples/plugin-musirawas
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sipantau demo examples/lubuklinggau --storage sqlite:///.sipantau/demo.db

test: $(STAMP) services browser
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy --strict src

services:
	bash scripts/services.sh

# Does nothing when /usr/bin/chromium is there; else apt-get installs it (root or sudo).
browser:
	bash scripts/browser.sh

# Re-pin after changing dependencies: make constraints (then commit constraints.txt).
constraints: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
