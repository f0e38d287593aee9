# The two commands of the README: `make serve` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Installs come from the lock (README, "Installs"): every package at its pinned version, each
# file checked against its hash; then the project itself, with no dependency resolution left.
# requirements-dev.txt: the service and the dev tools (make, CI); requirements.txt: the image.
$(BIN)/mxprobe: requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

.PHONY: install serve test lint bench postfix microsocks chromium lock verify-lock
install: $(BIN)/mxprobe

# `make lock` after editing pyproject.toml's dependencies: pins what is new, keeps every pin that
# still fits. `make lock UPGRADE="httpx uvicorn"` moves those to their newest allowed releases,
# `make lock UPGRADE=all` moves everything. pip-compile is itself locked (a dev dependency) and uses
# pip's resolver and pip's index settings; requirements.txt is the runtime part of the same pins.
PIP_COMPILE = $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--all-build-deps --no-emit-index-url --no-emit-find-links
UPGRADE_FLAGS = $(if $(filter all,$(UPGRADE)),--upgrade,$(UPGRADE:%=--upgrade-package %))
lock: install
	$(PIP_COMPILE) $(UPGRADE_FLAGS) --extra dev --output-file requirements-dev.txt pyproject.toml
	rm -f requirements.txt
	$(PIP_COMPILE) --constraint requirements-dev.txt --output-file requirements.txt pyproject.toml

# The installed .venv against the lock, and the lock against pyproject.toml.
verify-lock: install
	$(BIN)/pytest -q tests/unit/test_lock.py

# The conformance suite (tests/conformance) runs real Postfix: Debian's package, installed once.
# Debconf's "No configuration" leaves the system instance unconfigured and stopped.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
postfix:
	@if ! command -v postconf >/dev/null 2>&1 && [ ! -x /usr/sbin/postconf ]; then \
	  echo "installing Postfix (Debian's package) for tests/conformance"; \
	  echo "postfix postfix/main_mailer_type select No configuration" \
	    | $(SUDO) debconf-set-selections; \
	  $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y --no-install-recommends postfix; \
	fi

# A real SOCKS5 proxy for the engine's proxy tests (tests/integration/engine/test_socks_proxy.py).
microsocks:
	@if ! command -v microsocks >/dev/null 2>&1; then \
	  echo "installing microsocks (Debian's package) for the SOCKS5 tests"; \
	  $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y --no-install-recommends microsocks; \
	fi

# The web page's browser test (tests/acceptance/test_web_page.py): Debian's headless Chromium and
# its chromedriver, which Selenium drives (nothing is downloaded by Selenium or the test).
chromium:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing Chromium and chromedriver (Debian's packages) for the web page test"; \
	  $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y --no-install-recommends chromium chromium-driver; \
	fi

serve: install
	$(BIN)/mxprobe serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint postfix microsocks chromium
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m bench.run_all
