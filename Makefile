# CareWatch: the two commands are `make demo` and `make test`.
# `make demo` creates .venv (installing the project with every extra) and runs `carewatch demo`:
# the whole CareWatch on 127.0.0.1 with a simulated care home; it installs no Debian package.
# Arguments go through DEMO_ARGS, e.g. `make demo DEMO_ARGS='--port 8081'`.
# `make test` works on a fresh Debian machine as root: it installs the Debian packages the
# tests need when they are missing, creates .venv, installs the project with every extra, and
# runs the linters, the type checker and the whole test suite.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.carewatch-installed
EXTRAS := dev,gateway,cloud,sim,demo
# Real servers the integration tests start on free loopback ports (never as system services).
APT_PACKAGES := mosquitto influxdb chromium
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: test demo check lint format typecheck pytest venv system-deps clean

test: venv system-deps check pytest

# The demo installs no Debian package (NO_APT also holds for the venv it depends on).
demo: NO_APT := 1
demo: venv
	$(BIN)/carewatch demo $(DEMO_ARGS)

check: lint typecheck

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv
	$(BIN)/mypy

pytest: venv system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "CareWatch needs Python >= 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || \
		if [ "$(NO_APT)" = 1 ]; then echo "$(PYTHON) -m venv is missing: install python3-venv"; exit 1; \
		else $(MAKE) --no-print-directory apt-install PKGS=python3-venv; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

system-deps:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then $(MAKE) --no-print-directory apt-install PKGS="$$missing"; fi

apt-install:
	@echo "installing Debian packages:$(PKGS)"
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
	else echo "need root (or sudo) to apt-get install$(PKGS)"; exit 1; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $(PKGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts
