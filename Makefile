# The two commands a newcomer needs: `make serve` and `make test`. Both set up everything.
# The Dockerfile runs the same install steps; keep them in step.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export BUF_CACHE_DIR := $(CURDIR)/.cache/buf
export PATH := $(CURDIR)/$(BIN):$(PATH)

ARGS ?=

.PHONY: all venv generate check-generated lint fmt test serve bench clean redis-server

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The stubs are committed; regenerate them when missing or older than the proto (output is reproducible).
# The server's copy (import package realauth) and the client distribution's (realauth_client), see buf.gen.yaml.
STUBS := server/realauth/v1/realauth_pb2.py clients/python/realauth_client/v1/realauth_pb2.py
$(STUBS) &: proto/realauth/v1/realauth.proto | $(STAMP)
	$(MAKE) generate

# Regenerate the committed Python stubs from proto/ (reproducible: pinned grpcio-tools and mypy-protobuf).
generate: $(STAMP)
	rm -rf server/realauth/v1/*_pb2*.py server/realauth/v1/*_pb2*.pyi
	$(BIN)/buf generate
	$(BIN)/python tools/gen_client_stubs.py

# Fails when the committed stubs differ from what `make generate` would write.
check-generated: $(STAMP)
	$(BIN)/python tools/check_generated.py

lint: $(STAMP)
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code
	$(BIN)/ruff check server tests tools clients/python
	$(BIN)/ruff format --check server tests tools clients/python
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/buf format -w
	$(BIN)/ruff format server tests tools clients/python
	$(BIN)/ruff check --fix server tests tools clients/python

# The Redis store tests start a real redis-server (never a fake); install it when absent (Debian, as root).
redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

test: $(STAMP) $(STUBS) check-generated lint redis-server
	$(BIN)/python -m pytest $(ARGS)

# Ratios against baselines measured in the same run (not a test: numbers depend on the machine).
bench: $(STAMP) redis-server
	$(BIN)/python tools/bench.py $(ARGS)

serve: $(STAMP) $(STUBS)
	$(BIN)/realauth serve $(ARGS)

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache var
