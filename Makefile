# Each target sets up .venv/ from scratch when it is missing, then runs its job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: sim test clean

$(BIN)/dtg-hil: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,train]'
	touch $@

# Every bundled scenario through the whole simulated chain (plant -> CAN -> STM32 -> UART -> app -> models ->
# events), judged against its expect: section; tables at the end, artifacts under reports/<time>/.
sim: $(BIN)/dtg-hil
	$(BIN)/dtg-hil scenario validate scenarios/
	$(BIN)/python -m pytest -m sim scenarios/ -p no:cacheprovider

test: $(BIN)/dtg-hil
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) reports build *.egg-info
