# VideoQoS — the two commands are `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := librdkafka-dev libmaxminddb-dev libzstd-dev uap-core pkg-config mmdb-bin python3-ua-parser
PY_PACKAGES := pyarrow duckdb datasketches ddsketch protobuf jsonschema mmdb-writer netaddr maxminddb pytest pyyaml
QOS_DEBUG := .build/debug/qos
QOS_RELEASE := .build/release/qos

.PHONY: deps deps-system deps-python build release test test-swift test-interop demo bench clean

## deps: install the system libraries (apt-get, as root) and the Python test oracles (.venv). Idempotent.
deps: deps-system deps-python

deps-system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.stamp: Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(PY_PACKAGES)
	@touch $@

deps-python: $(VENV)/.stamp

build: deps-system
	$(SWIFT) build

release: deps-system
	$(SWIFT) build -c release

## test: everything CI runs — Swift unit/property tests, then interop tests with real readers.
test: deps build test-swift test-interop

test-swift:
	$(SWIFT) test

test-interop: deps-python build
	QOS_BIN=$(abspath $(QOS_DEBUG)) $(PY) -m pytest -q tests/interop

## demo: the main job on the embedded defaults (until the daemon lands: generate + replay + summary).
DEMO_DIR := output
demo: deps release
	@mkdir -p .demo
	$(QOS_RELEASE) generate --seed 2026 --sessions 5000 --rate 3000 --slow-pop fastly/ams \
	  --failing-player shaka-player@4.7.11 --late-fraction 0.01 --duplicate-fraction 0.005 \
	  --malformed-fraction 0.002 --out .demo/beacons.ndjson.zst
	$(QOS_RELEASE) replay .demo/beacons.ndjson.zst --sink $(DEMO_DIR)
	@$(QOS_RELEASE) inspect $(DEMO_DIR)/overall
	@$(PY) tools/demo_query.py $(DEMO_DIR)

bench: deps release
	$(PY) bench/run.py

clean:
	rm -rf .build .demo output/*/
