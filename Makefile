# tinyrank: the two commands are `make demo` and `make test`; everything else is a convenience.
SHELL := /bin/bash
BOARD ?= qemu_m4
PORT ?=
MODEL ?= build/demo/model.keras
DATA ?= build/demo/digits.npz
OUT ?= build/$(BOARD)
VENV := .venv
PY := $(VENV)/bin/python
TINYRANK := $(VENV)/bin/tinyrank
export PLATFORMIO_SETTING_ENABLE_TELEMETRY := No
export TF_CPP_MIN_LOG_LEVEL := 2
export TF_ENABLE_ONEDNN_OPTS := 0

.PHONY: setup demo demo-kws test lint bench costmodel flash run clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m toolchain.deploy.demo --board $(BOARD) --out build/demo

demo-kws: setup
	$(PY) -m examples.kws.demo --board $(BOARD) --out build/kws

test: lint
	$(PY) -m pytest -q tests

# The same checks as .pre-commit-config.yaml; `make test` (and so CI) runs them first.
LINT_PATHS := toolchain tests benchmarks examples
lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy toolchain

bench: setup
	$(PY) -m benchmarks.run_all --board $(BOARD) $(if $(PORT),--port $(PORT)) --out build/bench

# Measure the generated kernels on a grid of shapes in QEMU (M4, M3, M33) and refit the on-device
# cost model (toolchain/firmware/costmodel.json). Run it after changing a kernel; about 5 minutes.
costmodel: setup
	nice -n 10 $(PY) -m toolchain.firmware.costfit --out toolchain/firmware/costmodel.json

flash: setup
	@test -f $(MODEL) || $(PY) -m toolchain.deploy.demo --out build/demo --no-bench
	$(TINYRANK) deploy $(MODEL) --data $(DATA) --board $(BOARD) --out $(OUT) --flash $(if $(PORT),--port $(PORT))

run: setup
	@test -f $(MODEL) || $(PY) -m toolchain.deploy.demo --board $(BOARD) --out build/demo --no-bench
	$(TINYRANK) deploy $(MODEL) --data $(DATA) --board $(BOARD) --out $(OUT)

clean:
	rm -rf build .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
