# Each target sets up .venv/ from scratch when it is missing, then runs its job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: sim test lint clean chromium ser2net

$(BIN)/dtg-hil: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,train]'
	touch $@

# Every bundled scenario through the whole simulated chain (plant -> CAN -> STM32 -> UART -> app -> models ->
# events), judged against its expect: section; tables at the end, artifacts and the HTML report
# (index.html, metrics.txt: docs/report.md) under reports/<time>/. Scenario files run in parallel, one
# pytest-xdist worker per CPU (SIM_WORKERS=0 runs them in one process); a file's runs stay on one worker.
SIM_WORKERS ?= auto
sim: $(BIN)/dtg-hil
	$(BIN)/dtg-hil scenario validate scenarios/
	$(BIN)/python -m pytest -m sim scenarios/ -p no:cacheprovider -n $(SIM_WORKERS) --dist loadfile

test: lint chromium ser2net
	$(BIN)/python -m pytest

# ruff (pyproject.toml [tool.ruff]): pyflakes, pycodestyle, isort, pyupgrade, bugbear; zero findings. The import
# layers are checked by tests/test_layers.py.
lint: $(BIN)/dtg-hil
	$(BIN)/ruff check .

# The HTML report's test opens the report in headless Chromium: Debian's package, installed when missing and
# root (as CI is); otherwise the test skips, and fails when CI is set.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the HTML report's browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	else echo "chromium is missing and this is not a root Debian shell: the HTML report's browser test skips" \
		"(apt-get install --no-install-recommends chromium)"; fi

# The lab tests (tests/test_lab.py, docs/lab.md) run a labgrid exporter, which serves serial ports through Debian's
# ser2net: installed when missing and root (as CI is); otherwise those tests skip.
ser2net:
	@if command -v ser2net >/dev/null 2>&1 || [ -x /usr/sbin/ser2net ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's ser2net for the lab tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ser2net; \
	else echo "ser2net is missing and this is not a root Debian shell: the lab tests skip" \
		"(apt-get install --no-install-recommends ser2net)"; fi

clean:
	rm -rf $(VENV) reports build *.egg-info
