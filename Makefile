# Two commands on a fresh Debian 12 machine: `make demo` and `make test`.
# docs/testing.md says what `make test` runs and why.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
TYPED := ledwatch agent collector firmware_protocols scripts/services.py

.PHONY: demo test lint services venv clean dist

# Debian keeps `venv` in python3-venv, missing on a fresh machine: install it on demand.
$(STAMP): pyproject.toml setup.py ledwatch/_columns.pyx collector/influx/_encode.pyx
	$(PY) -m venv $(VENV) || { rm -rf $(VENV) && $(PY) scripts/services.py install-venv \
		&& $(PY) -m venv $(VENV); }
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	-$(BIN)/python scripts/services.py install-compiler  # for setup.py's compiled parts
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/ledwatch demo

# Mosquitto, InfluxDB 1.x, VictoriaMetrics and socat from Debian (apt-get, sudo if not root).
services:
	$(PY) scripts/services.py install

# Lint runs first but does not stop the tests; the exit code covers both, and the
# output still ends with pytest's summary line.
test: $(STAMP) services
	@lint=0; $(MAKE) --no-print-directory lint || lint=1; \
	if [ $$lint -ne 0 ]; then echo "*** lint FAILED (above); running the tests anyway"; fi; \
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	[ $$rc -eq 0 ] && [ $$lint -eq 0 ]

# Both run even when ruff fails, so one pass shows every problem.
lint: $(STAMP)
	@rc=0; \
	echo "$(BIN)/ruff check ."; $(BIN)/ruff check --output-format=concise . || rc=1; \
	echo "$(BIN)/mypy $(TYPED)"; $(BIN)/mypy $(TYPED) || rc=1; \
	exit $$rc

# A wheel and an sdist in dist/ (the display PC installs the wheel with the agent extra:
# docs/deploy.md). `build` runs the pyproject's backend in an isolated environment.
dist: $(STAMP)
	rm -rf dist build
	LEDWATCH_PURE_WHEEL=1 $(BIN)/python -m build --outdir dist .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
