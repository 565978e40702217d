# anthropic-router: every target creates .venv on demand.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run demo test lint bench e2e clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,speed]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/anthropic-router

demo: $(STAMP)
	$(BIN)/python -m router.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check router tests bench
	$(BIN)/ruff format --check router tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

# e2e: the real Claude Code CLI (each pinned version listed) and the TypeScript SDK through the router,
# against a scripted vLLM-like backend. npm installs are cached in $(E2E_DIR) until the lock file changes.
# `make e2e CLAUDE_CODE_VERSION=2.1.197` runs one version; E2E_RECORD=1 rewrites tests/fixtures/.
CLAUDE_CODE_VERSION ?= 2.1.331 2.1.197
E2E_DIR ?= .e2e
E2E_RECORD ?=
E2E_STAMP := $(E2E_DIR)/.installed

$(E2E_STAMP): e2e/package.json e2e/package-lock.json
	@command -v npm >/dev/null || { echo "make e2e needs Node.js and npm (apt-get install nodejs npm)"; exit 1; }
	@mkdir -p $(E2E_DIR)
	cp e2e/package.json e2e/package-lock.json $(E2E_DIR)/
	cd $(E2E_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

e2e: $(STAMP) $(E2E_STAMP)
	CLAUDE_CODE_VERSION="$(CLAUDE_CODE_VERSION)" E2E_DIR="$(abspath $(E2E_DIR))" E2E_RECORD="$(E2E_RECORD)" \
		$(BIN)/python -m pytest -q -p no:cacheprovider e2e

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
