# Each target sets up .venv/ from scratch when it is missing, then runs its job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: sim test lint clean chromium gcc firmware-arm ser2net

$(BIN)/dtg-hil: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,train]'
	touch $@

# Every bundled scenario through the whole simulated chain (plant -> CAN -> STM32 -> UART -> app -> models ->
# events), judged against its expect: section; tables at the end, artifacts and the HTML report
# (index.html, metrics.txt: docs/report.md) under reports/<time>/. Scenario files run in parallel, one
# pytest-xdist worker per CPU (SIM_WORKERS=0 runs them in one process); a file's runs stay on one worker. pytest's
# cache stays on: `.venv/bin/pytest -m sim --lf scenarios/` then re-runs only the scenarios that failed.
SIM_WORKERS ?= auto
sim: $(BIN)/dtg-hil
	$(BIN)/dtg-hil scenario validate scenarios/
	$(BIN)/python -m pytest -m sim scenarios/ -n $(SIM_WORKERS) --dist loadfile

# The tests in pytest-xdist workers, one more than the CPUs (a good part of the suite waits on the wall clock: paced
# rigs, the lab); TEST_WORKERS=0 runs them in one process. A file's tests stay on one worker, so a module's fixtures
# are built once; files go out in collection order, the longest first (conftest.py). Tests paced by the wall clock
# take the other workers' load as a busy machine's: they count the rig's lag, they do not fail on it (docs/rig.md,
# "Rig-side loss: when the rig falls behind").
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: lint chromium gcc firmware-arm ser2net
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

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

# The unit's own C firmware built for the host (docs/firmware.md: tests/test_host_firmware.py, rigs/host-firmware.yaml)
# needs the system C compiler with AddressSanitizer and UBSan: Debian's gcc, installed when missing and root;
# otherwise those tests skip (and fail when CI is set).
gcc:
	@if command -v cc >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's gcc for the host build of the unit's firmware"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev; \
	else echo "no C compiler and this is not a root Debian shell: the host-firmware tests skip" \
		"(apt-get install --no-install-recommends gcc libc6-dev)"; fi

# The sample firmware's sources compiled for the STM32F4's Cortex-M4 against the host HAL's header, with Debian's
# gcc-arm-none-eabi (installed when missing and root): proves no host-only code leaked into the application.
FIRMWARE := firmware_sim/dtg_firmware
ARM_CFLAGS := -mcpu=cortex-m4 -mthumb -std=c11 -Wall -Wextra -Werror -I $(FIRMWARE)/Core/Inc -I firmware_sim/host_hal/Inc
firmware-arm:
	@if ! command -v arm-none-eabi-gcc >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's gcc-arm-none-eabi for the Cortex-M4 build check of the sample firmware"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			gcc-arm-none-eabi libnewlib-arm-none-eabi; fi
	@if command -v arm-none-eabi-gcc >/dev/null 2>&1; then \
		for source in $(FIRMWARE)/Core/Src/*.c; do \
			arm-none-eabi-gcc $(ARM_CFLAGS) -c $$source -o /dev/null || exit 1; done; \
		echo "the sample firmware compiles for Cortex-M4 (arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -c)"; \
	else echo "arm-none-eabi-gcc is missing and this is not a root Debian shell: the Cortex-M4 build check is" \
		"skipped (apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi)"; fi

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
