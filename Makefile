# Each target sets up .venv/ from scratch when it is missing, then runs its job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: sim test clean

$(BIN)/dtg-hil: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The simulated rig end to end arrives with issue 5; until then `make sim` drives every bundled scenario
# through the vehicle plant and renders its signals with the anomaly windows shaded.
sim: $(BIN)/dtg-hil
	$(BIN)/dtg-hil scenario validate scenarios/
	$(BIN)/dtg-hil scenario render scenarios/ --out-dir reports/plant

test: $(BIN)/dtg-hil
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) reports build *.egg-info
