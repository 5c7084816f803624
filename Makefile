# Sets itself up from nothing: .venv from requirements.txt, node_modules from
# package-lock.json; each re-installed when its file changes (stamp files).
#   make test [PYTEST_ARGS=...]        host tests + the MicroPython gates
#   make bench [BENCH_ARGS="..."]      the bench (tools/bench.py)
#   make perf                          tools/perf.py
#   make fuzz [SEED=n] [FUZZ_ARGS=...]  tools/fuzz.py: 10**6 inputs per receive path, rate, branch coverage
#   make soak                          the long runs CI takes a slice of (a simulated day per inverter emulator)
#   make mpy [ARCHS="xtensawin armv6m"] compile everything into build/<arch>/
#   make deploy BOARD=name PORT=/dev/ttyUSB0 [STORE=auto|romfs|mpy] [FROZEN=auto|none|lower] [DRY_RUN=1]
#   make firmware BOARD=BMS_ESP32_ROMFS|BMS_RP2040_ROMFS|name [MICROPYTHON_DIR=...] [DRY_RUN=1]
#                                      MicroPython with a ROMFS partition (boards/micropython/)
#   make flash-micropython BOARD=name PORT=... FIRMWARE=image [DRY_RUN=1]
#   make micropython-frozen MICROPYTHON_DIR=...   32-bit unix MicroPython with the firmware
#                                      frozen in, for tools/ram.py (build/micropython-frozen/)
#   make clean / make distclean

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.requirements.stamp
# the `bmsctl` command: runs tools.bmsctl with this checkout on the path
BMSCTL := $(VENV)/bin/bmsctl
NODE_STAMP := node_modules/.package-lock.stamp
# MicroPython port stubs (both define `machine`, so one folder per port) for
# type-checking drivers and boards: host_tests/test_typecheck.py
STUBS := $(VENV)/stubs
STUBS_STAMP := $(STUBS)/.stamp
PORT_STUBS := esp32=micropython-esp32-stubs==1.27.0.post1 rp2=micropython-rp2-stubs==1.27.0.post1
ARCHS ?= xtensawin armv6m
BENCH_ARGS ?=
SEED ?=
FUZZ_ARGS ?=
BOARD ?=
PORT ?=
DRY_RUN ?=
STORE ?= auto
FROZEN ?= auto
# a module that fails to import is reported as an error and the rest still run
PYTEST_ARGS ?= --continue-on-collection-errors

.PHONY: all setup venv node stubs test bench perf fuzz soak mpy deploy firmware flash-micropython micropython-frozen clean distclean

all: test

setup: venv node stubs

venv: $(PY_STAMP) $(BMSCTL)
node: $(NODE_STAMP)
stubs: $(STUBS_STAMP)

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(PY_STAMP): requirements.txt | $(VPY)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(BMSCTL): Makefile | $(PY_STAMP)
	@printf '%s\n' '#!/bin/sh' '# bmsctl (tools/bmsctl), written by the Makefile: the checkout is two levels up' \
	  'bin=$$(dirname "$$0"); root=$$(cd "$$bin/../.." && pwd)' \
	  'PYTHONPATH="$$root$${PYTHONPATH:+:$$PYTHONPATH}" exec "$$bin/python" -m tools.bmsctl "$$@"' > $@
	@chmod +x $@

$(STUBS_STAMP): Makefile | $(PY_STAMP)
	@for spec in $(PORT_STUBS); do \
	  port=$${spec%%=*}; pkg=$${spec#*=}; \
	  rm -rf $(STUBS)/$$port; \
	  $(VPY) -m pip install --quiet --disable-pip-version-check --no-deps --target $(STUBS)/$$port "$$pkg" || exit 1; \
	done
	@touch $@

$(NODE_STAMP): package-lock.json package.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

test: setup
	$(VPY) -m pytest host_tests -q $(PYTEST_ARGS)

bench: setup
	$(VPY) -m tools.bench $(BENCH_ARGS)

perf: setup
	$(VPY) -m tools.perf

soak: setup
	BMS_SOAK=1 $(VPY) -m pytest host_tests/test_emulators.py -q -k through_a_day

fuzz: venv
	$(VPY) -m tools.fuzz $(if $(SEED),--seed $(SEED)) $(FUZZ_ARGS)

mpy: venv
	$(VPY) -m tools.deploy --mpy $(ARCHS)

deploy: venv
	$(VPY) -m tools.deploy --board "$(BOARD)" --port "$(PORT)" --store "$(STORE)" --frozen "$(FROZEN)" $(if $(DRY_RUN),--dry-run)

firmware: venv
	$(VPY) -m tools.flash build --board "$(BOARD)" $(if $(MICROPYTHON_DIR),--micropython "$(MICROPYTHON_DIR)") $(if $(OWNER_KEY),--owner-key "$(OWNER_KEY)") $(if $(DRY_RUN),--dry-run)

flash-micropython: venv
	$(VPY) -m tools.flash --board "$(BOARD)" --port "$(PORT)" --firmware "$(FIRMWARE)" $(if $(DRY_RUN),--dry-run)

micropython-frozen: venv
	MICROPYTHON_DIR="$(MICROPYTHON_DIR)" PYTHON=$(VPY) tools/build_frozen_unix.sh

clean:
	rm -rf build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -not -path './.venv/*' -not -path './node_modules/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules
