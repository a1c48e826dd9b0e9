VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

# Idempotent: re-installs only when pyproject.toml changes.
install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make run HOST=0.0.0.0 PORT=9000` (or SYNCAUCTION_HOST / SYNCAUCTION_PORT) to serve elsewhere;
# only values given on make's command line count (a shell's own HOST or PORT does not).
run: install
	$(VENV)/bin/syncauction serve \
	  $(if $(filter command line,$(origin HOST)),--host $(HOST)) \
	  $(if $(filter command line,$(origin PORT)),--port $(PORT))

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache data
