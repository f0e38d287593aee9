# The two commands of the README: `make serve` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/mxprobe: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: install serve test lint bench postfix microsocks
install: $(BIN)/mxprobe

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

serve: install
	$(BIN)/mxprobe serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint postfix microsocks
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m bench.run_all
